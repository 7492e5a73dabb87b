"""physim.optim: training optimizers by name, zeroth-order and consensus methods, schedules.

- `make_optimizer` / `list_optimizers` / `optimizer_info`: one registry over torch.optim,
  pytorch-optimizer (Adan, Lion, SophiaH, AdaBelief, AdaHessian, DiffGrad, AdamP,
  EXAdam, …) and physim's own optimizers; the shared training loop builds its
  optimizer here.
- `MeZO`, `SparseMeZO`, `SPSA`, `spsa_gradient`: zeroth-order training from loss values.
- `cbo_minimize`, `CBO`, `CBOConfig`, `CBOptimizer`: consensus-based optimisation over a
  batched objective ``f(X: (n_particles, dim)) -> (n_particles,)``.
- `MFAC`: SGD preconditioned by a sliding-window inverse empirical Fisher.
- `make_scheduler`, `refined_schedule`: linear decay (default), cosine, refined; warm-up.
- `AdaptiveBatchSize`: AdAdaGrad's norm test as a training-loop callback.
- `physim.optim.trajectory`: trajectory optimisation and system identification (loads on
  first use; its ``cbo`` method runs on `CBO` above).

See docs/optim.md.
"""

import importlib

from physim.optim.adaptive_batch import AdaptiveBatchSize, norm_test_batch_size, per_sample_gradients
from physim.optim.cbo import CBO, CBOConfig, CBOptimizer, CBOResult, cbo_minimize, cbo_update, consensus
from physim.optim.mfac import MFAC, SlidingWindowFisher
from physim.optim.registry import OptimizerInfo, list_optimizers, make_optimizer, optimizer_info
from physim.optim.schedules import SCHEDULES, lr_multiplier, make_scheduler, refined_form, refined_schedule
from physim.optim.zeroth_order import SPSA, MeZO, SparseMeZO, spsa_gradient

__all__ = [
    "CBO",
    "MFAC",
    "SCHEDULES",
    "SPSA",
    "AdaptiveBatchSize",
    "CBOConfig",
    "CBOResult",
    "CBOptimizer",
    "MeZO",
    "OptimizerInfo",
    "SlidingWindowFisher",
    "SparseMeZO",
    "cbo_minimize",
    "cbo_update",
    "consensus",
    "list_optimizers",
    "lr_multiplier",
    "make_optimizer",
    "make_scheduler",
    "norm_test_batch_size",
    "optimizer_info",
    "per_sample_gradients",
    "refined_form",
    "refined_schedule",
    "spsa_gradient",
    "trajectory",
]

# Heavier subpackages load on first use.
_LAZY = frozenset({"trajectory"})


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"physim.optim.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'physim.optim' has no attribute {name!r}")
