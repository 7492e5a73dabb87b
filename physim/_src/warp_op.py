"""Warp kernels as differentiable torch operations.

Forward records a ``wp.Tape`` over zero-copy views of the torch inputs; backward seeds
the tape's outputs with the incoming torch gradients, replays the kernel adjoints and
returns the gradients of the inputs that require them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from physim.runtime import init_warp

__all__ = ["WarpContext", "WarpOp"]


def _torch_shape(shape: tuple[int, ...], dtype: Any) -> tuple[int, ...]:
    """Torch shape holding a Warp array of `shape` and `dtype` (vectors/matrices add trailing dims)."""
    return tuple(shape) + tuple(getattr(dtype, "_shape_", ()))


def _torch_dtype(dtype: Any) -> torch.dtype:
    wp = init_warp()
    return wp.dtype_to_torch(getattr(dtype, "_wp_scalar_type_", dtype))


class WarpContext:
    """Allocation helper handed to a launch function.

    Arrays it allocates are backed by torch memory (so outputs are ordinary torch
    tensors) and carry gradient buffers when the operation is being differentiated.

    Attributes:
        device: Warp device name of the inputs (``"cpu"`` or ``"cuda:N"``).
        requires_grad: Whether the launch is recorded for backward.
    """

    def __init__(self, device: torch.device, requires_grad: bool):
        self.torch_device = device
        self.device = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
        self.requires_grad = requires_grad

    def zeros(self, shape: int | tuple[int, ...], dtype: Any):
        """A zero-filled Warp array of `shape` and `dtype`, with a gradient buffer if recording."""
        wp = init_warp()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        tshape = _torch_shape(shape, dtype)
        tdtype = _torch_dtype(dtype)
        t = torch.zeros(tshape, dtype=tdtype, device=self.torch_device)
        grad = torch.zeros_like(t) if self.requires_grad else None
        return wp.from_torch(t, dtype=dtype, requires_grad=self.requires_grad, grad=grad)


class _WarpFunction(torch.autograd.Function):
    # Kernel adjoints run outside torch: no second derivatives (see physim/_src/graph.py).
    physim_first_order_only = "Warp kernel"

    @staticmethod
    def forward(ctx, op: WarpOp, record: bool, *inputs: torch.Tensor):
        wp = init_warp()
        device = inputs[0].device
        wctx = WarpContext(device, record)
        arrays = []
        for t, dtype, needs in zip(inputs, op.input_dtypes, ctx.needs_input_grad[2:]):
            t = t.detach().contiguous()
            want_grad = record and needs
            grad = torch.zeros_like(t) if want_grad else None
            arrays.append(wp.from_torch(t, dtype=dtype, requires_grad=want_grad, grad=grad))
        stream = wp.stream_from_torch(device) if device.type == "cuda" else None
        tape = wp.Tape() if record else None
        with _maybe(wp.ScopedStream(stream) if stream is not None else None), _maybe(tape):
            outs = op.launch(wctx, *arrays)
        outs = (outs,) if not isinstance(outs, (tuple, list)) else tuple(outs)
        for o in outs:
            if record and not o.requires_grad:
                raise RuntimeError(
                    f"{op.name}: every output must be allocated with WarpContext.zeros so it carries a gradient"
                )
        ctx.op, ctx.tape, ctx.arrays, ctx.outs, ctx.device = op, tape, arrays, outs, device
        return tuple(wp.to_torch(o, requires_grad=False) for o in outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outputs: torch.Tensor | None):
        wp = init_warp()
        if ctx.tape is None:
            raise RuntimeError(f"{ctx.op.name}: backward called on a forward that was not recorded")
        stream = wp.stream_from_torch(ctx.device) if ctx.device.type == "cuda" else None
        with _maybe(wp.ScopedStream(stream) if stream is not None else None):
            ctx.tape.zero()
            for o, g in zip(ctx.outs, grad_outputs):
                if g is not None:
                    wp.to_torch(o.grad).copy_(g.reshape(wp.to_torch(o.grad).shape))
            ctx.tape.backward()
            grads = []
            for a, needs in zip(ctx.arrays, ctx.needs_input_grad[2:]):
                grads.append(wp.to_torch(a.grad).clone() if (needs and a.grad is not None) else None)
        return (None, None, *grads)


class _maybe:
    """`with _maybe(cm)` enters `cm` unless it is None."""

    def __init__(self, cm):
        self.cm = cm

    def __enter__(self):
        return self.cm.__enter__() if self.cm is not None else None

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc) if self.cm is not None else False


class WarpOp:
    """A torch-differentiable operation made of Warp kernel launches.

    Args:
        launch: ``launch(ctx, *arrays) -> array | tuple[array, ...]``. Receives a
            `WarpContext` and one Warp array per torch input (zero-copy views; never write
            to them) and returns its output arrays, each allocated with ``ctx.zeros``.
            Intermediate arrays must also come from ``ctx.zeros`` and must not be
            overwritten after a kernel has read them, so the tape can replay adjoints.
        input_dtypes: Warp dtype of each input, e.g. ``(wp.vec3d, wp.float64)``; a
            torch tensor of shape ``(N, 3)`` becomes an array of ``N`` ``vec3d``.
        name: Shown in error messages.

    Calling the op with torch tensors returns torch tensors (a tuple if the launch
    returns several arrays). The tape is recorded only when grad mode is on and some
    input requires grad, so rollouts under ``torch.no_grad()`` pay nothing for autodiff.
    """

    def __init__(self, launch: Callable[..., Any], input_dtypes: Sequence[Any], *, name: str | None = None):
        self.launch = launch
        self.input_dtypes = tuple(input_dtypes)
        self.name = name or getattr(launch, "__name__", "WarpOp")

    def __call__(self, *inputs: torch.Tensor):
        if len(inputs) != len(self.input_dtypes):
            raise TypeError(f"{self.name}: expected {len(self.input_dtypes)} tensors, got {len(inputs)}")
        devices = {t.device for t in inputs}
        if len(devices) != 1:
            raise ValueError(f"{self.name}: inputs are on several devices {sorted(map(str, devices))}; expected one")
        record = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        out = _WarpFunction.apply(self, record, *inputs)
        return out[0] if len(out) == 1 else out
