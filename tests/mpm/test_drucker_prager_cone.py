"""Verify the Drucker–Prager cone constants (physim.mpm.materials.drucker_prager.friction_alpha)."""

from __future__ import annotations

import math

import torch

from physim.mpm.materials.drucker_prager import friction_alpha


def yield_fn(tau, alpha):
    """‖dev τ‖ + α tr τ for stresses of shape (..., d, d) (≤ 0 inside the cone)."""
    d = tau.shape[-1]
    tr = tau.diagonal(dim1=-2, dim2=-1).sum(-1)
    dev = tau - tr[..., None, None] / d * torch.eye(d, dtype=tau.dtype)
    return torch.linalg.matrix_norm(dev) + alpha * tr


def test_2d_cone_is_the_3d_cone_in_plane_strain_flow():
    """Verify the 2D yield function equals Klár's 3D one on plane-strain flow states (τ_zz = in-plane mean)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 2, 2, generator=g, dtype=torch.float64)
    tau2 = a + a.transpose(1, 2) - 4.0 * torch.eye(2, dtype=torch.float64)  # mostly compressive
    tau3 = torch.zeros(500, 3, 3, dtype=torch.float64)
    tau3[:, :2, :2] = tau2
    tau3[:, 2, 2] = tau2.diagonal(dim1=1, dim2=2).mean(-1)
    for phi in (20.0, 30.0, 40.0):
        f2, f3 = yield_fn(tau2, friction_alpha(phi, 2)), yield_fn(tau3, friction_alpha(phi, 3))
        assert torch.allclose(f2, f3, rtol=0, atol=1e-12)
        assert (f2 > 0).any() and (f2 < 0).any()  # both sides of the cone were sampled


def test_flowing_friction_of_the_2d_cone():
    """Verify the shear-band friction τ/p = √2 α₂ of steady isochoric simple shear (σ_xx = σ_yy = −p).

    For φ = 30° it is tan 34.7°, above φ: this margin is what the collapse's inertia uses up.
    """
    p, phi = 1.0, 30.0
    alpha = friction_alpha(phi, 2)
    tau = alpha * 2 * p / math.sqrt(2)  # on the cone: √2 τ = α · 2p
    stress = torch.tensor([[-p, tau], [tau, -p]], dtype=torch.float64)
    assert abs(float(yield_fn(stress, alpha))) < 1e-12
    s = math.sin(math.radians(phi))
    assert math.isclose(tau / p, 2 * math.sqrt(3) * s / (3 - s), rel_tol=1e-12)
    assert math.isclose(math.degrees(math.atan(tau / p)), 34.72, abs_tol=0.01)


def test_friction_alpha_tensor_matches_float():
    """Verify the differentiable (tensor) path gives the float values in 2D and 3D."""
    phi = torch.tensor(30.0, dtype=torch.float64, requires_grad=True)
    for dim in (2, 3):
        a = friction_alpha(phi, dim)
        assert math.isclose(float(a.detach()), friction_alpha(30.0, dim), rel_tol=1e-12)
        (g,) = torch.autograd.grad(a, phi)
        h = 1e-6
        fd = (friction_alpha(30.0 + h, dim) - friction_alpha(30.0 - h, dim)) / (2 * h)
        assert math.isclose(float(g), fd, rel_tol=1e-6)
