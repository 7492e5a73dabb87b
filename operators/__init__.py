"""physim.operators: neural operators (GIOROM, GNS, SFNO, FNO, EquiNO, HC-MoE, NCLaw) in torch.

Installed from the top-level folder ``operators/`` as ``physim.operators``; it depends
on the physim core, never the other way round.
"""

__all__: list[str] = []
