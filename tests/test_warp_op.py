"""Verify WarpOp on a minimal kernel: values, gradients, recording only when needed, argument errors."""

from __future__ import annotations

import pytest
import torch

from physim.autodiff import WarpOp
from physim.runtime import init_warp
from physim.testing import assert_grad_matches_fd

wp = init_warp()


@wp.kernel
def scale_and_square(x: wp.array(dtype=wp.vec3d), k: wp.array(dtype=wp.float64), y: wp.array(dtype=wp.vec3d),
                     s: wp.array(dtype=wp.float64)):
    i = wp.tid()
    y[i] = k[0] * x[i]
    wp.atomic_add(s, 0, wp.dot(x[i], x[i]))


def launch(ctx, x, k):
    n = x.shape[0]
    y, s = ctx.zeros(n, wp.vec3d), ctx.zeros(1, wp.float64)
    wp.launch(scale_and_square, n, inputs=[x, k], outputs=[y, s], device=ctx.device)
    return y, s


OP = WarpOp(launch, (wp.vec3d, wp.float64), name="scale_and_square")


def test_values_and_gradients():
    """Verify outputs and gradients of a two-output Warp op against closed forms and finite differences."""
    x = torch.randn(17, 3, dtype=torch.float64, requires_grad=True)
    k = torch.tensor([1.7], dtype=torch.float64, requires_grad=True)
    y, s = OP(x, k)
    assert torch.allclose(y, 1.7 * x) and torch.allclose(s, (x * x).sum().reshape(1))
    (y.sum() + 3 * s.sum()).backward()
    assert torch.allclose(x.grad, 1.7 + 6 * x.detach())
    assert torch.allclose(k.grad, x.detach().sum().reshape(1))
    assert_grad_matches_fd(OP, [x.detach(), k.detach()], rtol=1e-8)


def test_only_one_output_used_and_input_without_grad():
    """Verify that unused outputs and inputs without requires_grad are handled."""
    x = torch.randn(5, 3, dtype=torch.float64)
    k = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    _, s = OP(x, k)
    assert not s.requires_grad or s.grad_fn is not None
    y, _ = OP(x, k)
    y.sum().backward()
    assert torch.allclose(k.grad, x.sum().reshape(1))


def test_no_tape_without_grad():
    """Verify that under no_grad (or without inputs needing grad) nothing is recorded."""
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.tensor([2.0], dtype=torch.float64)
    with torch.no_grad():
        y, _ = OP(x, k)
    assert y.grad_fn is None and not y.requires_grad


def test_argument_errors():
    """Verify that a wrong number of tensors is refused, naming the op."""
    with pytest.raises(TypeError, match="scale_and_square: expected 2 tensors, got 1"):
        OP(torch.zeros(3, 3, dtype=torch.float64))
