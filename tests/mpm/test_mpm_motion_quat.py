"""Verify the collider kinematics in torch: the one-node quaternion product and the batched substep poses."""

from __future__ import annotations

import pytest
import torch

from physim.mpm.motion import quat_mul, substep_poses
from physim.testing import assert_grad_matches_fd

f64 = torch.float64


def _reference_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product (x, y, z, w) written out component by component."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], -1)


def _reference_poses(pose, lin, ang, dt, substeps, target_quat):
    """The per-substep loop that `substep_poses` replaced in pose mode."""
    p, q = pose[:, :3], pose[:, 3:]
    rows = []
    for s in range(substeps + 1):
        a = s / substeps
        qs = (1 - a) * q + a * target_quat
        qs = qs / qs.norm(dim=-1, keepdim=True)
        ps = p + (s * dt) * lin
        if s == substeps:
            return torch.stack(rows), torch.cat([ps, qs], dim=-1)
        rows.append(torch.cat([ps, qs, lin, ang], dim=-1))
    raise AssertionError("unreachable")


def test_quat_mul_matches_the_written_out_product_and_finite_differences():
    """Verify that quat_mul equals the component formula and its gradient (broadcast too) matches FD."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 4, dtype=f64, generator=g)
    b = torch.randn(5, 4, dtype=f64, generator=g)
    torch.testing.assert_close(quat_mul(a, b), _reference_product(a, b), rtol=0, atol=1e-14)
    assert_grad_matches_fd(quat_mul, [a.clone().requires_grad_(True), b.clone().requires_grad_(True)])
    b1 = torch.randn(1, 4, dtype=f64, generator=g)  # broadcast over the rows of a
    assert_grad_matches_fd(quat_mul, [a.clone().requires_grad_(True), b1.requires_grad_(True)])
    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(quat_mul, (x, y))
    assert quat_mul(x, y).grad_fn is not None and quat_mul(x, y).grad_fn.name().startswith("_QuatMul")


@pytest.mark.parametrize("substeps", [1, 2, 4])
@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_batched_substep_poses_equal_the_loop(substeps, dtype):
    """Verify that the batched pose-mode records equal the former per-substep loop bit for bit."""
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(3, 7, dtype=f64, generator=g)
    pose[:, 3:] /= pose[:, 3:].norm(dim=-1, keepdim=True)
    lin, ang = torch.randn(3, 3, dtype=f64, generator=g), torch.randn(3, 3, dtype=f64, generator=g)
    tq = torch.randn(3, 4, dtype=f64, generator=g)
    tq /= tq.norm(dim=-1, keepdim=True)
    args = [t.to(dtype) for t in (pose, lin, ang)]
    rec, end = substep_poses(*args, 1e-3, substeps, tq.to(dtype))
    rec_ref, end_ref = _reference_poses(*args, 1e-3, substeps, tq.to(dtype))
    assert rec.shape == (substeps, 3, 13)
    assert torch.equal(rec, rec_ref) and torch.equal(end, end_ref)


def test_batched_substep_poses_gradient_matches_finite_differences():
    """Verify the gradient of the batched pose-mode records with respect to pose, velocities and target."""
    g = torch.Generator().manual_seed(2)
    pose = torch.randn(2, 7, dtype=f64, generator=g)
    lin, ang, tq = (torch.randn(2, k, dtype=f64, generator=g) for k in (3, 3, 4))

    def fn(pose, lin, ang, tq):
        rec, end = substep_poses(pose, lin, ang, 1e-2, 3, tq)
        return rec, end

    assert_grad_matches_fd(fn, [t.requires_grad_(True) for t in (pose, lin, ang, tq)])


def test_quat_mul_under_torch_func():
    """Verify that torch.func's vjp and vmap trace through the one-node product."""
    g = torch.Generator().manual_seed(3)
    a, b, w = (torch.randn(4, 4, dtype=f64, generator=g) for _ in range(3))
    _, vjp = torch.func.vjp(quat_mul, a, b)
    ga, gb = vjp(w)
    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    (_reference_product(x, y) * w).sum().backward()
    torch.testing.assert_close(ga, x.grad)
    torch.testing.assert_close(gb, y.grad)
    torch.testing.assert_close(torch.func.vmap(quat_mul)(a, b), _reference_product(a, b))
