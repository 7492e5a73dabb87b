"""Verify the gradients of NCLaw's laws against finite differences (float64), at rest and deformed."""

from __future__ import annotations

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

from physim.testing import assert_grad_matches_fd

pytestmark = pytest.mark.usefixtures("float64_single_thread")


def _perturb(model, scale=0.3, seed=3):
    return perturbed(model, seed=seed, scale=scale)


def _deformed(dim, n=4, scale=0.15, seed=0):
    return random_F(n, dim, scale, seed=seed, min_det=None)


def _repeated(dim):
    """F = Q diag(1.2, 1.2[, 0.9]): two coincident singular values, where torch's SVD backward is NaN."""
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(7)))
    s = torch.tensor([1.2, 1.2, 0.9][:dim])
    return (Q * torch.linalg.det(Q)) @ torch.diag(s) @ Q.T


@pytest.mark.parametrize("dim", [2, 3])
def test_polar_backward_matches_fd_at_rest_and_at_repeated_singular_values(dim):
    """Verify the polar factor's backward at F = I, at coincident singular values and at a generic F."""
    for F in (torch.eye(dim).expand(3, dim, dim), _repeated(dim)[None], _deformed(dim, scale=0.3)):
        assert_grad_matches_fd(lambda F: polar(F), [F.clone()])


LAWS = {
    "invariant": lambda dim: InvariantElasticLaw(dim=dim, width=8),
    "e3nn": lambda dim: E3nnElasticLaw(dim=dim, scalars=4, tensors=2, depth=1),
    "mlp": lambda dim: PlainMLPStress(dim=dim, width=8),
    "plastic": lambda dim: NeuralPlasticity(dim=dim, width=8),
    "mlp-plastic": lambda dim: PlainMLPPlasticity(dim=dim, width=8),
}


@pytest.mark.parametrize("name", list(LAWS))
@pytest.mark.parametrize("dim", [2, 3])
def test_law_gradients_match_fd_in_F_and_in_the_weights(name, dim):
    """Verify dOut/dF at rest, at repeated singular values, deformed, and dOut/dθ for every parameter."""
    law = _perturb(LAWS[name](dim))
    # Stresses are ~1e5 Pa: compare in units of the stress scale so that atol means something.
    scale = 1.0 / getattr(law, "stress_scale", 1.0)
    for F in (torch.eye(dim).expand(2, dim, dim).clone(), _repeated(dim)[None], _deformed(dim)):
        assert_grad_matches_fd(lambda F: scale * law(F), [F], rtol=1e-6)
    names = [n for n, _ in law.named_parameters()]
    values = [p.detach().clone() for p in law.parameters()]
    F = _deformed(dim, seed=1)

    def with_params(*ps):
        return scale * torch.func.functional_call(law, dict(zip(names, ps)), (F,))

    # Every parameter tensor alone along one direction, four of them (first, two inner, last) along two more.
    some = sorted({0, len(values) // 3, 2 * len(values) // 3, len(values) - 1})
    assert_grad_matches_fd(with_params, values, rtol=1e-6, n_directions=2, wrt=some)
    assert_grad_matches_fd(with_params, values, rtol=1e-6, n_directions=1, wrt=range(len(values)), seed=1)
