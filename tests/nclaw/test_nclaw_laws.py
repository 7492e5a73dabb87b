"""Verify NCLaw's priors by construction: rotation equivariance, zero stress at rest, identity projection."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from nclaw_helpers import float64_single_thread, perturbed, random_F  # noqa: F401 (fixture)
from physim.operators.nclaw import (
    E3nnElasticLaw,
    InvariantElasticLaw,
    NeuralPlasticity,
    PlainMLPPlasticity,
    PlainMLPStress,
    polar,
)

from physim.errors import ConfigError

pytestmark = pytest.mark.usefixtures("float64_single_thread")


def random_rotations(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if dim == 2:
        t = 2 * math.pi * torch.rand(n, generator=gen)
        return torch.stack([t.cos(), -t.sin(), t.sin(), t.cos()], -1).view(n, 2, 2)
    q = torch.randn(n, 4, generator=gen)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).T
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).view(n, 3, 3)


@functools.cache
def _built(name: str) -> torch.nn.Module:
    # Building an e3nn network takes ~1 s: build each law once (in float64) and hand out copies.
    torch.set_default_dtype(torch.float64)
    kind, dim = name.split("-")
    dim = int(dim[0])
    if kind == "invariant":
        return InvariantElasticLaw(dim=dim, width=16)
    return E3nnElasticLaw(dim=dim, scalars=8, tensors=4)


ELASTIC = {name: (lambda name=name: copy.deepcopy(_built(name)))
           for name in ("invariant-3d", "invariant-2d", "e3nn-3d", "e3nn-2d")}


@pytest.mark.parametrize("name", list(ELASTIC))
@pytest.mark.parametrize("scale", [0.02, 0.3])
def test_elastic_laws_are_rotation_equivariant(name, scale):
    """Verify P(R F) = R P(F) to 1e-5 (float64) for random rotations, small and large strains, trained-like weights."""
    law = perturbed(ELASTIC[name]())
    dim = law.dim
    F = random_F(64, dim, scale)
    R = random_rotations(len(F), dim)
    P, P_rot = law(F), law(R @ F)
    assert P.abs().max() > 1e3  # a nonzero, nonlinear stress: the check is not vacuous
    err = (P_rot - R @ P).abs().max() / P.abs().max()
    assert err < 1e-5, f"{name}: relative equivariance error {err:.2e}"


def test_invariant_law_is_isotropic_and_mlp_baseline_is_not():
    """Verify P(F Q) = P(F) Q for the invariant law, and that the plain MLP baseline breaks objectivity."""
    law = perturbed(InvariantElasticLaw(width=16))
    F = random_F(32, 3, 0.2)
    Q = random_rotations(len(F), 3, seed=5)
    assert ((law(F @ Q) - law(F) @ Q).abs().max() / law(F).abs().max()) < 1e-10
    mlp = perturbed(PlainMLPStress(width=16))
    assert ((mlp(Q @ F) - Q @ mlp(F)).abs().max() / mlp(F).abs().max()) > 1e-2


@pytest.mark.parametrize("name", list(ELASTIC))
def test_stress_is_exactly_zero_at_identity(name):
    """Verify the stress is exactly 0 at F = I, before and after the weights move."""
    for law in (ELASTIC[name](), perturbed(ELASTIC[name]())):
        eye = torch.eye(law.dim).expand(5, law.dim, law.dim)
        assert torch.equal(law(eye), torch.zeros_like(eye))
        assert torch.equal(law.kirchhoff(eye), torch.zeros_like(eye))


def test_plain_mlp_stress_is_not_zero_at_identity_once_trained():
    """Verify the baseline really lacks the rest-state prior (so the prior tests above can fail)."""
    mlp = perturbed(PlainMLPStress(width=16))
    assert mlp(torch.eye(3)[None]).abs().max() > 1.0


def test_untrained_laws_are_linear_elasticity():
    """Verify that an untrained law is its skeleton: small-strain stress = λ tr(ε) I + 2μ ε."""
    eps = 1e-6 * torch.tensor([[1.0, 0.3, 0.0], [0.3, -0.5, 0.2], [0.0, 0.2, 0.8]])
    E, nu = 2e5, 0.25
    mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
    expected = lam * torch.trace(eps) * torch.eye(3) + 2 * mu * eps
    for law in (InvariantElasticLaw(youngs_modulus=E, poisson_ratio=nu),
                E3nnElasticLaw(youngs_modulus=E, poisson_ratio=nu),
                PlainMLPStress(youngs_modulus=E, poisson_ratio=nu)):
        P = law((torch.eye(3) + eps)[None])[0]
        assert torch.allclose(P, expected, rtol=1e-4, atol=1e-6 * mu * 1e-6), type(law).__name__


@pytest.mark.parametrize("dim", [2, 3])
def test_plastic_projection_is_identity_at_initialisation(dim):
    """Verify the untrained projection returns small-strain (and any) F unchanged, bit for bit."""
    for proj in (NeuralPlasticity(dim=dim, width=16), PlainMLPPlasticity(dim=dim, width=16)):
        for scale in (1e-4, 1e-2):
            F = random_F(32, dim, scale)
            assert torch.equal(proj(F), F)


@pytest.mark.parametrize("dim", [2, 3])
def test_plastic_projection_is_rotation_equivariant_and_fixes_identity(dim):
    """Verify F'(R F) = R F'(F) for a trained-like projection, and that an undeformed F stays undeformed."""
    proj = perturbed(NeuralPlasticity(dim=dim, width=16), scale=0.5)
    F = random_F(64, dim, 0.2)
    R = random_rotations(len(F), dim)
    out = proj(F)
    assert (out - F).abs().max() > 1e-3  # it does project
    assert ((proj(R @ F) - R @ out).abs().max()) < 1e-10
    eye = torch.eye(dim).expand(3, dim, dim)
    assert torch.equal(proj(eye), eye)


@pytest.mark.parametrize("dim", [2, 3])
def test_plastic_projection_never_increases_the_elastic_strain(dim):
    """Verify |dev E'| ≤ |dev E| and tr E' ≤ tr E for a trained-like projection, so it cannot blow a rollout up."""
    torch.manual_seed(0)  # the network's initial weights, before the perturbation
    proj = perturbed(NeuralPlasticity(dim=dim, width=16), scale=0.1)
    F = random_F(256, dim, 0.4)
    _, E = polar(F)
    _, E_new = polar(proj(F))
    def tr(A):
        return A.diagonal(dim1=-2, dim2=-1).sum(-1)

    def dev_norm(A):
        return (A - tr(A)[..., None, None] / dim * torch.eye(dim)).norm(dim=(-1, -2))

    assert (dev_norm(E_new) < dev_norm(E)).float().mean() > 0.2  # it projects a good part of these strains
    assert (dev_norm(E_new) <= dev_norm(E) + 1e-12).all()
    assert (tr(E_new) <= tr(E) + 1e-12).all()


@pytest.mark.parametrize("dim", [2, 3])
def test_polar_matches_svd_and_is_exact_at_identity(dim):
    """Verify the polar factor against torch's SVD (W Vᵀ) and exactness at F = I."""
    F = random_F(200, dim, 0.5)
    W, _, Vh = torch.linalg.svd(F)
    R, E = polar(F)
    assert torch.allclose(R, W @ Vh, atol=1e-12)
    assert torch.allclose(R @ (E + torch.eye(dim)), F, atol=1e-12)
    R, E = polar(torch.eye(dim)[None])
    assert torch.equal(R[0], torch.eye(dim)) and torch.equal(E, torch.zeros_like(E))


def test_bad_input_is_one_clear_error():
    """Verify wrong shapes and constructor values raise ConfigError naming the field and value."""
    with pytest.raises(ConfigError, match=r"nclaw-invariant.F=\(4, 2, 2\).*\(\.\.\., 3, 3\)"):
        InvariantElasticLaw()(torch.eye(2).expand(4, 2, 2))
    with pytest.raises(ConfigError, match="poisson_ratio=0.5"):
        InvariantElasticLaw(poisson_ratio=0.5)
    with pytest.raises(ConfigError, match="dim=4"):
        NeuralPlasticity(dim=4)
    with pytest.raises(ConfigError, match="strain_scale=0"):
        E3nnElasticLaw(strain_scale=0)
