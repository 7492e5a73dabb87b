"""Verify the scipy.sparse.linalg and warp.optim.linear adapters return physim's SolveResult faithfully."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim import solvers
from physim.errors import ConfigError
from physim.solvers.problems import poisson_matrix
from physim.solvers.scipy_adapter import SCIPY_METHODS, as_scipy_operator, scipy_solve
from physim.solvers.warp_adapter import to_warp_bsr, warp_solve


@pytest.fixture(scope="module")
def system():
    A = poisson_matrix(12)
    b = torch.from_numpy(np.random.default_rng(0).standard_normal((2, A.shape[0])))
    x = torch.from_numpy(np.linalg.solve(A.toarray(), b.numpy().T).T)
    return A, b, x


@pytest.mark.parametrize("method", SCIPY_METHODS)
def test_scipy_solve_matches_direct(system, method):
    """Verify every scipy method reaches the solution and reports products with A as iterations."""
    A, b, x = system
    res = scipy_solve(A, b, method=method, rtol=1e-10, M="jacobi" if method != "minres" else None)
    assert res.all_converged, res.residual_norm
    assert torch.allclose(res.x, x, rtol=1e-7, atol=1e-9)
    assert bool((res.iterations > 0).all()) and res.method == f"scipy.{method}"


def test_scipy_operator_round_trip(system):
    """Verify a physim callable becomes a scipy LinearOperator with the same action."""
    A = system[0]
    op = as_scipy_operator(lambda X: torch.from_numpy((A @ X.numpy().T).T), A.shape[0])
    v = np.arange(A.shape[0], dtype=float)
    assert np.allclose(op.matvec(v), A @ v)
    assert np.allclose(op.matmat(np.stack([v, 2 * v], 1)), A @ np.stack([v, 2 * v], 1))


@pytest.mark.parametrize("method", ["cg", "cr", "bicgstab", "gmres"])
def test_warp_solve_matches_direct(system, method):
    """Verify Warp's solvers through the adapter: torch in, zero-copy torch out, true-residual verdict."""
    A, b, x = system
    res = warp_solve(A, b[0], method=method, rtol=1e-10, maxiter=2000, check_every=5)
    assert bool(res.converged) and isinstance(res.x, torch.Tensor)
    assert torch.allclose(res.x.double(), x[0], rtol=1e-7, atol=1e-9)
    assert float(res.residual_norm) <= float(res.tolerance)


def test_warp_solve_flags_non_convergence_and_bad_input(system):
    """Verify a Warp solve stopped early is flagged, raises on request, and bad shapes are refused."""
    A, b, _ = system
    bsr = to_warp_bsr(A)
    res = warp_solve(bsr, b[0], method="cg", rtol=1e-12, maxiter=3, check_every=1)
    assert not bool(res.converged)
    with pytest.raises(solvers.NotConverged):
        warp_solve(bsr, b[0], method="cg", rtol=1e-12, maxiter=3, check_every=1, raise_on_fail=True)
    with pytest.raises(ConfigError, match=r"^b="):
        warp_solve(bsr, b[0, :-1])
    with pytest.raises(ConfigError, match=r"^method="):
        warp_solve(bsr, b[0], method="minres")
