"""Verify SOR in its Warp kernel and the Tsallis-INF bandits that choose its relaxation factor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim.errors import ConfigError
from physim.solvers.bandits import TsallisINF, TsallisINFCB, omega_grid, run_sor_sequence, sor_iteration_table
from physim.solvers.problems import poisson_matrix
from physim.solvers.relaxation import optimal_omega_laplacian, sor


def test_sor_matches_direct_solve_for_each_omega():
    """Verify SOR converges to the direct solution for every ω and that the optimal ω is fastest."""
    s = 12
    A = poisson_matrix(s)
    b = np.random.default_rng(0).standard_normal(s * s)
    omegas = np.array([1.0, 1.3, optimal_omega_laplacian(s), 1.95])
    res = sor(A, b, omega=omegas, rtol=1e-10)
    x = np.linalg.solve(A.toarray(), b)
    assert res.x.shape == (4, s * s) and bool(res.converged.all())
    assert np.allclose(res.x.numpy(), x, rtol=1e-7, atol=1e-9 * abs(x).max())
    its = res.iterations.numpy()
    assert its[2] == its.min() and its[0] > 3 * its[2]
    # Residual histories are true residuals, non-increasing for the SPD case with ω ≤ ω*.
    h = res.residuals[0].numpy()
    assert h[0] == pytest.approx(np.linalg.norm(b)) and (np.diff(h[: its[0] + 1]) <= 1e-12 * h[0]).all()


def test_sor_flags_and_refuses():
    """Verify maxiter gives converged=False, and bad ω, shapes and zero diagonals are refused."""
    A = poisson_matrix(8)
    b = np.ones(64)
    res = sor(A, b, omega=1.0, rtol=1e-12, maxiter=3)
    assert not bool(res.converged) and int(res.iterations) == 3
    for kwargs, field in [({"omega": 2.0}, "omega"), ({"omega": 0.0}, "omega")]:
        with pytest.raises(ConfigError, match=rf"^{field}="):
            sor(A, b, **kwargs)
    with pytest.raises(ConfigError, match=r"^b="):
        sor(A, np.ones(10))
    with pytest.raises(ConfigError, match=r"^A=.*zero diagonal"):
        sor(sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 2.0]])), np.ones(2))


def test_tsallis_inf_concentrates_on_the_best_arm():
    """Verify the bandit's probabilities stay a distribution and concentrate on the cheapest arm."""
    rng = np.random.default_rng(0)
    costs = np.array([50.0, 30.0, 10.0, 40.0, 60.0])
    learner = TsallisINF(np.arange(5.0), seed=1)
    picks = []
    for _ in range(2000):
        a = int(learner.predict())
        picks.append(a)
        learner.update(costs[a] + rng.normal(0, 2))
        p = learner.probabilities()
        assert abs(p.sum() - 1) < 1e-9 and (p >= 0).all()
    assert np.mean(np.array(picks[-500:]) == 2) > 0.8
    with pytest.raises(ConfigError, match=r"^loss="):
        learner.update(float("nan"))


def test_contextual_learner_uses_the_context():
    """Verify TsallisINF-CB learns a different best arm per context bin."""
    learner = TsallisINFCB(np.arange(2.0), 2, (0.0, 1.0), seed=0)
    rng = np.random.default_rng(1)
    picks = {0: [], 1: []}
    for _ in range(1200):
        c = float(rng.random())
        a = int(learner.predict(c))
        best = 0 if c < 0.5 else 1
        picks[best].append(a)
        learner.update(10.0 if a == best else 40.0)
    assert np.mean(np.array(picks[0][-200:]) == 0) > 0.8 and np.mean(np.array(picks[1][-200:]) == 1) > 0.8


def test_bandit_beats_default_omega_on_a_shifted_laplacian_sequence():
    """Verify Tsallis-INF spends fewer SOR iterations than ω = 1 over a sequence (Learning to Relax setup)."""
    A0 = poisson_matrix(10) / (11**2)  # delsq on a 10 × 10 grid
    rng = np.random.default_rng(0)
    shifts = -0.15 + 0.6 * rng.beta(2.0, 6.0, size=120)
    systems = [((A0 + c * sp.identity(100)).tocsr(), rng.standard_normal(100)) for c in shifts]
    grid = omega_grid(n=8)
    table = sor_iteration_table(systems, grid, rtol=1e-8)
    default = run_sor_sequence(systems, 1.0, table=table, grid=grid)
    learned = run_sor_sequence(systems, TsallisINF(grid, seed=0), table=table, grid=grid)
    best_fixed = int(table.sum(0).min())
    assert default.total == int(table[:, 0].sum())
    assert learned.total < default.total and learned.converged.all()
    assert best_fixed <= learned.total
