"""Verify GCRO-DR, the recycled subspace across systems, and SKR's features, sorting and sequence solver."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim.errors import ConfigError
from physim.solvers.problems import darcy_coefficient, darcy_matrix, gaussian_random_field, poisson_matrix
from physim.solvers.recycling import RecycleSpace, gcrodr, gmres_arnoldi
from physim.solvers.skr import _gray_rank, skr_features, solve_sequence, sort_systems


def _darcy(n, s=24, seed=0):
    fields = gaussian_random_field(n, s, rng=seed)
    return fields, [darcy_matrix(darcy_coefficient(f)) for f in fields], np.ones((n, s * s))


def test_darcy_matrix_is_spd_and_reduces_to_poisson():
    """Verify the Darcy matrix is symmetric positive definite and equals the Laplacian for a = 1."""
    _, mats, _ = _darcy(1, s=10)
    A = mats[0]
    assert abs(A - A.T).max() < 1e-9 * abs(A).max()
    assert np.linalg.eigvalsh(A.toarray()).min() > 0
    assert abs(darcy_matrix(np.ones((10, 10))) - poisson_matrix(10)).max() < 1e-9
    with pytest.raises(ConfigError, match=r"^a="):
        darcy_matrix(-np.ones((4, 4)))


@pytest.mark.parametrize("M", [None, "jacobi", "ilu"])
def test_gcrodr_matches_direct_solve(M):
    """Verify GCRO-DR (with and without preconditioner) reaches the sparse direct solution."""
    _, mats, rhs = _darcy(1)
    A, b = mats[0], rhs[0]
    res = gcrodr(A, b, M=M, rtol=1e-10, m=30, k=10)
    x = sla.spsolve(A.tocsc(), b)
    assert bool(res.converged)
    assert np.allclose(res.x.numpy(), x, rtol=1e-7, atol=1e-9 * abs(x).max())
    assert float(res.residual_norm) <= float(res.tolerance)


@pytest.mark.parametrize("M", [None, "ilu"])
def test_gmres_arnoldi_matches_direct_solve_and_scipy_gmres(M):
    """Verify the numpy GMRES baseline reaches the direct solution in as many products as scipy's GMRES."""
    _, mats, rhs = _darcy(1)
    A, b = mats[0], rhs[0]
    res = gmres_arnoldi(A, b, M=M, rtol=1e-10, m=30)
    x = sla.spsolve(A.tocsc(), b)
    assert bool(res.converged) and float(res.residual_norm) <= float(res.tolerance)
    assert np.allclose(res.x.numpy(), x, rtol=1e-7, atol=1e-9 * abs(x).max())
    count = [0]

    def mv(v):
        count[0] += 1
        return A @ v

    if M is not None:
        return  # scipy's GMRES preconditions on the left: its product count is not comparable
    sla.gmres(sla.LinearOperator(A.shape, mv, dtype=float), b, rtol=1e-10, restart=30, maxiter=100)
    # Both stop inside a cycle once the Givens estimate meets rtol, then confirm with the true residual.
    assert abs(int(res.iterations) - count[0]) <= max(3, 0.1 * count[0]), (int(res.iterations), count[0])


def test_recycling_cuts_iterations_on_related_systems():
    """Verify carrying the recycled subspace solves a sequence of related systems in far fewer products with A."""
    _, mats, rhs = _darcy(8, s=32)
    fresh = sum(int(gcrodr(A, b, rtol=1e-8, m=40, k=20).iterations) for A, b in zip(mats, rhs))
    space = RecycleSpace(k=20)
    carried = [gcrodr(A, b, rtol=1e-8, m=40, recycle=space) for A, b in zip(mats, rhs)]
    assert all(bool(r.converged) for r in carried)
    assert all(r.info["recycled"] for r in carried[1:])
    total = sum(int(r.iterations) for r in carried)
    assert total < 0.8 * fresh, (total, fresh)
    # And far fewer than restarted GMRES from scratch (scipy), the SKR baseline.
    count = [0]
    for A, b in zip(mats, rhs):
        def mv(v, A=A):
            count[0] += 1
            return A @ v

        sla.gmres(sla.LinearOperator(A.shape, mv, dtype=float), b, rtol=1e-8, restart=40, maxiter=200)
    assert total < 0.6 * count[0], (total, count[0])


def test_gcrodr_flags_non_convergence_and_bad_input():
    """Verify maxiter stops with converged=False, and bad shapes/values are refused."""
    _, mats, rhs = _darcy(1)
    res = gcrodr(mats[0], rhs[0], rtol=1e-12, m=10, k=4, maxiter=15)
    assert not bool(res.converged) and float(res.residual_norm) > float(res.tolerance)
    with pytest.raises(ConfigError, match=r"^b="):
        gcrodr(mats[0], rhs[:2])
    with pytest.raises(ConfigError, match=r"^A="):
        gcrodr(mats[0][:-1, :-1], rhs[0])
    with pytest.raises(ConfigError, match=r"^m="):
        gcrodr(mats[0], rhs[0], m=5, k=10)
    with pytest.raises(ConfigError, match=r"^b="):
        gcrodr(mats[0], np.full(rhs[0].shape, np.nan))


def test_features_and_sorting():
    """Verify SKR features are normalised PCA coordinates and both orders are permutations that shorten the path."""
    fields, _, _ = _darcy(40, s=16)
    F = skr_features(fields)
    assert F.shape == (40, 7) and F.min() >= 0 and F.max() <= 1
    for method in ("greedy", "gray"):
        order = sort_systems(F, method=method)
        assert sorted(order.tolist()) == list(range(40))
    path = lambda o: float(np.linalg.norm(np.diff(F[o], axis=0), axis=1).sum())  # noqa: E731
    assert path(sort_systems(F, method="greedy")) < 0.8 * path(np.arange(40))
    assert path(sort_systems(F, method="gray")) < path(np.arange(40))
    with pytest.raises(ConfigError, match=r"^method="):
        sort_systems(F, method="random")


def test_gray_rank_orders_neighbouring_cells_one_bit_apart():
    """Verify consecutive cells in Gray-code rank differ in exactly one bit."""
    bits = np.array([[int(c) for c in f"{i:04b}"] for i in range(16)])
    rank = _gray_rank(bits)
    ordered = bits[np.argsort(rank)]
    assert sorted(rank.tolist()) == list(range(16))
    assert all(int(np.abs(np.diff(ordered[i: i + 2], axis=0)).sum()) == 1 for i in range(15))


def test_solve_sequence_methods_agree_and_keep_original_order():
    """Verify gcrodr, gcrotmk, gmres and gmres_arnoldi sequences give the same solutions, in the original order."""
    fields, mats, rhs = _darcy(6, s=20)
    order = sort_systems(skr_features(fields))
    ref = np.stack([sla.spsolve(A.tocsc(), b) for A, b in zip(mats, rhs)])
    out = {}
    for method in ("gcrodr", "gcrotmk", "gmres", "gmres_arnoldi"):
        seq = solve_sequence(mats, rhs, order=order, method=method, M="jacobi", rtol=1e-9, m=30, k=10)
        assert seq.converged.all() and (seq.order == order).all()
        assert np.allclose(seq.x, ref, rtol=1e-6, atol=1e-9 * abs(ref).max())
        assert seq.info["total_iterations"] == int(seq.iterations.sum())
        assert 0.0 < seq.info["total_cpu_seconds"] and 0.0 < seq.info["total_seconds"]
        out[method] = seq
    assert out["gcrodr"].info["total_iterations"] < out["gmres_arnoldi"].info["total_iterations"]
    with pytest.raises(ConfigError, match=r"^order="):
        solve_sequence(mats, rhs, order=np.zeros(6, dtype=int))
