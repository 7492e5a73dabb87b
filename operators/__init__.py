"""physim.operators: neural operators (GIOROM, GNS, SFNO, FNO, EquiNO, HC-MoE, NCLaw) in torch.

Installed from the top-level folder ``operators/`` as ``physim.operators``; it depends
on the physim core, never the other way round.

- `OperatorBase`: self-registering operators that save and `load` without a config file.
- `physim.operators.training`: the shared training loop (`Trainer`, `TrainConfig`).
"""

from physim.operators.base import OperatorBase, OperatorFileError, load_operator, registered_operators

load = load_operator

__all__ = ["OperatorBase", "OperatorFileError", "load", "load_operator", "registered_operators"]
