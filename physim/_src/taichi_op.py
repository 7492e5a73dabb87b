"""Taichi kernels as differentiable torch operations.

Taichi fields are allocated once per simulator and reused by every call, so the
bridge copies torch tensors into the input fields (Taichi cannot view torch memory)
and copies outputs back. Backward restores the inputs and re-runs the forward
kernels when another call has overwritten the fields since, seeds the output
gradients, and runs each recorded kernel's ``.grad()`` in reverse order (Taichi's
source-transformation autodiff).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

__all__ = ["KernelRecorder", "TaichiOp"]


class KernelRecorder:
    """Launches Taichi kernels and remembers them, with their arguments, for the backward pass."""

    def __init__(self) -> None:
        self.launches: list[tuple[Any, tuple[Any, ...]]] = []

    def __call__(self, kernel: Any, *args: Any) -> None:
        kernel(*args)
        self.launches.append((kernel, args))

    def backward(self) -> None:
        for kernel, args in reversed(self.launches):
            kernel.grad(*args)


class _TaichiFunction(torch.autograd.Function):
    # Kernel adjoints run outside torch: no second derivatives (see physim/_src/graph.py).
    physim_first_order_only = "Taichi kernel"

    @staticmethod
    def forward(ctx, op: TaichiOp, *inputs: torch.Tensor):
        device = inputs[0].device
        token = op._load_and_run(inputs)
        ctx.op, ctx.token, ctx.device = op, token, device
        ctx.save_for_backward(*inputs)
        return tuple(f.to_torch(device=device) for f in op.outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outputs: torch.Tensor | None):
        op = ctx.op
        inputs = ctx.saved_tensors
        if op._token != ctx.token:
            # Another call reused the fields since this forward: restore its inputs and intermediates.
            op._load_and_run(inputs, token=ctx.token)
        for f in op.grad_fields:
            f.grad.fill(0)
        for f, g in zip(op.outputs, grad_outputs):
            if g is not None:
                f.grad.from_torch(g.detach().contiguous())
        op._recorder.backward()
        grads = []
        for f, needs in zip(op.inputs, ctx.needs_input_grad[1:]):
            grads.append(f.grad.to_torch(device=ctx.device) if needs else None)
        return (None, *grads)


def _field_torch_shape(f: Any) -> tuple[int, ...]:
    """Torch shape of a Taichi field: its shape plus (n,) for vectors or (n, m) for matrices."""
    shape = tuple(f.shape)
    if hasattr(f, "n"):
        shape += (f.n,) if getattr(f, "ndim", 2) == 1 else (f.n, f.m)
    return shape


class TaichiOp:
    """A torch-differentiable operation made of Taichi kernel launches on fields.

    Args:
        inputs: One Taichi field per torch input, of matching shape (vector fields add
            a trailing dimension), each with ``needs_grad=True``.
        outputs: Fields copied out as the op's torch outputs (``needs_grad=True``).
        program: ``program(run)`` launches the forward kernels as ``run(kernel, *args)``;
            kernels must follow Taichi's global data access rules (no field element read
            after it is overwritten in the same launch) so their ``.grad()`` is exact.
        grad_fields: Every field with ``needs_grad`` that the program touches (inputs,
            intermediates, outputs); their gradients are zeroed before each backward.
        name: Shown in error messages.

    The fields belong to this op: it is the only thing that writes them.
    """

    _tokens = itertools.count(1)

    def __init__(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        program: Callable[[KernelRecorder], None],
        grad_fields: Sequence[Any],
        *,
        name: str = "TaichiOp",
    ):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.program = program
        self.grad_fields = tuple(grad_fields)
        self.name = name
        self._token = 0
        self._recorder = KernelRecorder()

    def _load_and_run(self, inputs: Sequence[torch.Tensor], token: int | None = None) -> int:
        for f, t in zip(self.inputs, inputs):
            expected = _field_torch_shape(f)
            if tuple(t.shape) != expected:
                raise ValueError(f"{self.name}: input of shape {tuple(t.shape)} given, expected {expected}")
            f.from_torch(t.detach().contiguous())
        self._recorder = KernelRecorder()
        self.program(self._recorder)
        self._token = token if token is not None else next(self._tokens)
        return self._token

    def __call__(self, *inputs: torch.Tensor):
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{self.name}: expected {len(self.inputs)} tensors, got {len(inputs)}")
        out = _TaichiFunction.apply(self, *inputs)
        return out[0] if len(out) == 1 else out
