"""Verify DCDM: the stencil operator, the network's properties, training, and the solver on larger grids."""

from __future__ import annotations

import pytest
import torch
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim.errors import ConfigError
from physim.solvers import cg
from physim.solvers.dcdm import DCDMNet, DCDMTrainConfig, dcdm_loss, dcdm_solve, laplacian_stencil, train_dcdm
from physim.solvers.problems import poisson_matrix


@pytest.fixture(scope="module")
def trained():
    """A small network trained on the 16² Poisson matrix (a few seconds on one core)."""
    torch.set_num_threads(1)
    cfg = DCDMTrainConfig(grid=16, channels=8, steps=60, samples=200, batch_size=8, ritz=128, progress=False)
    return train_dcdm(cfg)


@pytest.mark.parametrize("dim", [2, 3])
def test_stencil_equals_poisson_matrix(dim):
    """Verify the convolution stencil equals the assembled Dirichlet Laplacian."""
    s = 6
    X = torch.randn(2, *([s] * dim), dtype=torch.float64)
    A = poisson_matrix(s, dim=dim)
    expected = torch.from_numpy((A @ X.reshape(2, -1).numpy().T).T).reshape(X.shape)
    assert torch.allclose(laplacian_stencil(X), expected, rtol=1e-12, atol=1e-9)


def test_network_is_scale_equivariant_and_size_agnostic():
    """Verify f(c r) = c f(r) for c > 0 (no biases) and that one network runs on several grid sizes."""
    net = DCDMNet(channels=4).double()
    r = torch.randn(2, 16, 16, dtype=torch.float64)
    assert torch.allclose(net(3.7 * r), 3.7 * net(r), rtol=1e-10, atol=1e-12)
    for s in (8, 24, 40):
        assert net(torch.randn(1, s, s, dtype=torch.float64)).shape == (1, s, s)
    with pytest.raises(ConfigError, match=r"^r="):
        net(torch.randn(16, 16))


def test_training_lowers_the_loss(trained):
    """Verify unsupervised training cuts ‖r − αA f(r)‖²/‖r‖² by an order of magnitude."""
    _, log = trained
    first, last = sum(log["loss"][:5]) / 5, sum(log["loss"][-5:]) / 5
    assert last < 0.1 * first, (first, last)


@pytest.mark.parametrize(("s", "factor"), [(16, 2), (32, 3)])
def test_dcdm_solves_poisson_in_far_fewer_iterations_than_cg(trained, s, factor):
    """Verify DCDM reaches rtol 1e-6 on the training grid (2× fewer iterations than CG) and on a 4× larger one (3×)."""
    net, _ = trained
    A = poisson_matrix(s)
    b = torch.randn(2, s * s, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
    res = dcdm_solve(A, b, net, grid_shape=(s, s), rtol=1e-6, maxiter=200)
    ref = cg(A, b, rtol=1e-6)
    assert res.all_converged
    x = torch.from_numpy(torch.linalg.solve(torch.from_numpy(A.toarray()), b.T).T.numpy())
    assert torch.allclose(res.x, x, rtol=1e-4, atol=1e-5 * float(x.abs().max()))
    assert int(res.iterations.max()) * factor < int(ref.iterations.min()), (res.iterations, ref.iterations)


def test_dcdm_bad_input(trained):
    """Verify a grid that does not match b, and a non-symmetric matrix, are refused."""
    net, _ = trained
    A = poisson_matrix(8)
    b = torch.ones(64, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"^grid_shape="):
        dcdm_solve(A, b, net, grid_shape=(4, 4))
    with pytest.raises(ConfigError, match=r"^A=.*non-symmetric"):
        dcdm_solve(A + torch.triu(torch.ones(64, 64, dtype=torch.float64), 1).numpy(), b, net, grid_shape=(8, 8))
    with pytest.raises(ConfigError, match=r"^ritz="):
        DCDMTrainConfig(grid=8, ritz=100)


def test_loss_is_zero_for_exact_inverse():
    """Verify the scale-free loss vanishes for any multiple of A⁻¹ (the network is defined up to a constant)."""
    s = 8
    A = torch.from_numpy(poisson_matrix(s).toarray())
    Ainv = torch.linalg.inv(A)

    class Exact(torch.nn.Module):
        def forward(self, r):
            return -5.0 * (r.reshape(r.shape[0], -1) @ Ainv.T).reshape(r.shape)

    r = torch.randn(3, s, s, dtype=torch.float64)
    assert float(dcdm_loss(Exact(), r)) < 1e-20
