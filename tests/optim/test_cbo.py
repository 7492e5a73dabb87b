"""Verify consensus-based optimisation: closed forms of its pieces, convergence, the three APIs."""

from __future__ import annotations

import math

import pytest
import torch

from physim.errors import ConfigError
from physim.optim import CBO, CBOConfig, cbo_minimize, cbo_update, consensus, make_optimizer


def rastrigin(X: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    Z = X - shift
    return 10 * Z.shape[-1] + (Z**2 - 10 * torch.cos(2 * math.pi * Z)).sum(-1)


def test_consensus_limits_and_stability():
    """Verify α=0 gives the mean, large α the argmin, weights match the closed form, and no overflow."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, dtype=torch.float64, generator=gen)
    f = (X**2).sum(-1)
    torch.testing.assert_close(consensus(X, f, 0.0), X.mean(0))
    torch.testing.assert_close(consensus(X, f, 1e12), X[f.argmin()])
    w = torch.exp(-2.0 * f) / torch.exp(-2.0 * f).sum()
    torch.testing.assert_close(consensus(X, f, 2.0), (w[:, None] * X).sum(0))
    big = consensus(X, f + 1e6, 1e3)  # exp(-1e9) underflows without logsumexp
    assert torch.isfinite(big).all()
    f_nan = f.clone()
    f_nan[0] = float("nan")
    assert torch.isfinite(consensus(X, f_nan, 1.0)).all()
    batched = consensus(X.view(5, 10, 3), f.view(5, 10), 1.0)
    torch.testing.assert_close(batched[2], consensus(X[20:30], f[20:30], 1.0))


def test_update_drift_and_noise_closed_forms():
    """Verify X−c contracts by (1−λdt) without noise, and the noise variances of both variants."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(4000, 2, dtype=torch.float64, generator=gen) * torch.tensor([1.0, 3.0], dtype=torch.float64)
    c = torch.tensor([0.5, -0.5], dtype=torch.float64)
    zero = torch.zeros_like(X)
    out = cbo_update(X, c, lam=2.0, sigma=1.0, dt=0.1, anisotropic=True, noise=zero)
    torch.testing.assert_close(out - c, 0.8 * (X - c))
    xi = torch.randn(X.shape, dtype=torch.float64, generator=gen)
    sigma, dt = 0.7, 0.04
    aniso = cbo_update(X, c, lam=0.0, sigma=sigma, dt=dt, anisotropic=True, noise=xi) - X
    iso = cbo_update(X, c, lam=0.0, sigma=sigma, dt=dt, anisotropic=False, noise=xi) - X
    torch.testing.assert_close(aniso, sigma * math.sqrt(dt) * (X - c) * xi)
    torch.testing.assert_close(iso, sigma * math.sqrt(dt) * (X - c).norm(dim=-1, keepdim=True) * xi)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_anisotropic_cbo_solves_shifted_rastrigin_10d_where_random_search_fails():
    """Verify success (‖x − x*‖∞ < 0.25) on 10-D Rastrigin, x* = 1.3·1, for three seeds.

    Random search with the same number of evaluations is the baseline: it must fail.
    """
    shift, d = 1.3, 10
    for seed in range(3):
        X0 = 6 * torch.rand(200, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 3
        cfg = CBOConfig(steps=1000, dt=0.01, lam=1.0, sigma=8.0, alpha=1e4, anisotropic=True, seed=seed)
        res = cbo_minimize(lambda X: rastrigin(X, shift), X0, cfg)
        assert float((res.consensus - shift).abs().max()) < 0.25, (seed, res.consensus)
        assert res.n_evaluations == 200 * res.steps
        R = 6 * torch.rand(res.n_evaluations, d, generator=torch.Generator().manual_seed(99), dtype=torch.float64) - 3
        best = R[rastrigin(R, shift).argmin()]
        assert float((best - shift).abs().max()) >= 0.25


def test_isotropic_cbo_converges_on_a_shifted_quadratic():
    """Verify the isotropic variant converges to the minimiser of a 4-D quadratic."""
    X0 = 4 * torch.rand(100, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 2
    target = torch.tensor([0.7, -1.1, 0.2, 1.5], dtype=torch.float64)
    cfg = CBOConfig(steps=400, dt=0.05, sigma=0.5, alpha=1e3, anisotropic=False, seed=0)
    res = cbo_minimize(lambda X: ((X - target) ** 2).sum(-1), X0, cfg)
    assert float((res.consensus - target).abs().max()) < 0.05


def test_random_batches_ask_tell_and_stopping():
    """Verify the random-batch variant converges, ask/tell reproduces cbo_minimize, and f_target stops early."""
    X0 = 4 * torch.rand(200, 6, generator=torch.Generator().manual_seed(2)) - 2
    sphere = lambda X: ((X - 0.5) ** 2).sum(-1)  # noqa: E731
    # A large α: with a soft consensus (α = 30) the swarm collapses ~0.1 away from the minimiser.
    cfg = CBOConfig(steps=300, dt=0.05, sigma=0.8, alpha=1e3, batch_size=20, seed=3)
    res = cbo_minimize(sphere, X0, cfg)
    assert float((res.consensus - 0.5).abs().max()) < 0.05
    opt = CBO(X0, cfg)
    while not opt.done():
        opt.tell(sphere(opt.ask()))
    torch.testing.assert_close(opt.consensus, res.consensus, rtol=0, atol=0)
    early = cbo_minimize(sphere, X0, CBOConfig(steps=300, dt=0.05, sigma=0.5, alpha=30.0, f_target=0.05))
    assert early.f_best <= 0.05 and early.steps < 300


def test_cbo_optimizer_trains_a_model_without_gradients():
    """Verify CBOptimizer (by name 'cbo') fits a linear model from loss values only."""
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = torch.nn.Linear(3, 1)
    opt = make_optimizer("cbo", model.parameters(), lr=0.05, n_particles=40, init_std=1.0, sigma=5.0, alpha=1e3)
    loss = lambda: torch.nn.functional.mse_loss(model(x), y)  # noqa: E731
    with torch.no_grad():
        first = float(loss())
    for _ in range(150):
        opt.step(loss)
    with torch.no_grad():
        assert float(loss()) < 1e-3 * first


def test_bad_input():
    """Verify clear errors for bad particles, hyper-parameters and value shapes."""
    with pytest.raises(ConfigError, match=r"^dt="):
        CBOConfig(dt=0.0)
    with pytest.raises(ConfigError, match=r"^sigma="):
        CBOConfig(sigma=-1.0)
    with pytest.raises(ConfigError, match=r"^alpha_growth="):
        CBOConfig(alpha_growth=0.5)
    with pytest.raises(ConfigError, match=r"^X0="):
        CBO(torch.zeros(5))
    with pytest.raises(ConfigError, match=r"^batch_size=10"):
        CBO(torch.zeros(5, 2), CBOConfig(batch_size=10))
    opt = CBO(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="expected 5 values"):
        opt.tell(torch.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        consensus(torch.zeros(3, 2), torch.full((3,), float("inf")), 1.0)
