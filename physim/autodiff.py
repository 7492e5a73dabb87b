"""The bridge between simulator kernels and torch autograd.

- `WarpOp`: Warp kernel launches recorded on a ``wp.Tape`` over zero-copy views of
  torch tensors become one differentiable torch operation.
- `TaichiOp`: the same for Taichi kernels on fields, through Taichi's autodiff.
- `first_order_only_ops`: which Warp/Taichi ops a loss flows through (they have no
  second derivatives, so Hessian-based optimizers must refuse such a loss).
- `checkpointed_rollout`: a differentiable rollout of any torch-differentiable step
  whose memory grows with T/K + K instead of T.

Example::

    op = WarpOp(launch, input_dtypes=(wp.vec3d, wp.float64))
    x1 = op(x0, k)                       # torch tensors in, torch tensors out
    x1.sum().backward()                  # gradients flow back through the Warp adjoints
"""

from __future__ import annotations

from physim._src.graph import first_order_only_ops
from physim._src.rollout import RolloutResult, checkpointed_rollout
from physim._src.taichi_op import KernelRecorder, TaichiOp
from physim._src.tree import flatten, map_tensors
from physim._src.warp_op import WarpContext, WarpOp

__all__ = [
    "KernelRecorder",
    "RolloutResult",
    "TaichiOp",
    "WarpContext",
    "WarpOp",
    "checkpointed_rollout",
    "first_order_only_ops",
    "flatten",
    "map_tensors",
]
