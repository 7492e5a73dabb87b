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


@pytest.mark.parametrize("name", ["jacobi", "ilu", "ichol", "amg"])
def test_numpy_preconditioner_path_matches_torch_path(name):
    """Verify each preconditioner's numpy path (used by GCRO-DR and scipy) applies the same map as its torch path."""
    import torch

    from physim.solvers import preconditioners as P
    from physim.solvers.scipy_adapter import as_scipy_operator

    _, mats, _ = _darcy(1, s=12)
    A = mats[0]
    M = {"jacobi": P.jacobi, "ilu": P.ilu, "ichol": P.ichol, "amg": P.amg}[name](A)
    r = np.random.default_rng(3).standard_normal(A.shape[0])
    ref = M(torch.from_numpy(r)[None])[0].numpy()
    assert M.apply_numpy is not None
    assert np.allclose(M.apply_numpy(r), ref, rtol=1e-12, atol=1e-14 * abs(ref).max())
    assert np.allclose(as_scipy_operator(M, A.shape[0]).matvec(r), ref, rtol=1e-12, atol=1e-14 * abs(ref).max())
    if name == "ichol":  # the compiled sweeps are exactly the two triangular solves with the IC(0) factor
        L, _ = P._ic0_factor(A.tocsr())
        tri = sla.spsolve_triangular(L.T.tocsr(), sla.spsolve_triangular(L.tocsr(), r, lower=True), lower=False)
        assert np.allclose(M.apply_numpy(r), tri, rtol=1e-12, atol=1e-14 * abs(tri).max())


def test_solve_sequence_shares_one_preconditioner_per_matrix():
    """Verify a preconditioner factory is called per system and that IC(0) cuts GMRES and GCRO-DR products alike."""
    from physim.solvers.preconditioners import ichol

    _, mats, rhs = _darcy(4, s=20)
    built = {id(A): ichol(A) for A in mats}
    calls = []

    def factory(A):
        calls.append(id(A))
        return built[id(A)]

    ref = np.stack([sla.spsolve(A.tocsc(), b) for A, b in zip(mats, rhs)])
    for method in ("gcrodr", "gmres_arnoldi"):
        plain = solve_sequence(mats, rhs, method=method, rtol=1e-9, m=30, k=10)
        pre = solve_sequence(mats, rhs, method=method, M=factory, rtol=1e-9, m=30, k=10)
        assert pre.converged.all() and np.allclose(pre.x, ref, rtol=1e-6, atol=1e-9 * abs(ref).max())
        assert pre.info["total_iterations"] < 0.5 * plain.info["total_iterations"]
    assert sorted(calls) == sorted([id(A) for A in mats] * 2)


def test_bench_solvers_precond_option_runs_every_variant_with_shared_preconditioners():
    """Verify the benchmark's preconditioned SKR case builds one preconditioner per distinct matrix and reports it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_solvers.py"
    spec = importlib.util.spec_from_file_location("bench_solvers_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, mats, _ = _darcy(3, s=10)
    pcs, cpu, _ = bench.build_preconditioners([mats[0], mats[1], mats[0]], "ichol")
    assert len(pcs) == 2 and cpu >= 0.0
    rows = bench.skr_case("poisson", 12, 4, 1e-8, 1, chunk=2, variants=[0, 1, 5], precond="ichol")
    assert [r["precond"] for r in rows] == ["ichol"] * 3 and all(r["all_converged"] for r in rows)
    assert rows[1]["speedup_cpu_fair"] == 1.0 and "precond_us" in rows[0]["unit_costs_us"]
    with pytest.raises(SystemExit):
        bench.main(["--parts", "a", "--precond", "nonsense"])


def test_gcrodr_refreshing_every_few_cycles_still_solves_and_carries_the_space():
    """Verify update_every > 1 reaches the direct solution, refreshes the space on the last cycle, and is validated."""
    _, mats, rhs = _darcy(3, s=24, seed=4)
    space = RecycleSpace(k=10)
    for A, b in zip(mats, rhs):
        before = None if space.U is None else space.U.copy()
        res = gcrodr(A, b, rtol=1e-10, m=25, recycle=space, update_every=3)
        x = sla.spsolve(A.tocsc(), b)
        assert bool(res.converged) and np.allclose(res.x.numpy(), x, rtol=1e-7, atol=1e-9 * abs(x).max())
        assert before is None or not np.allclose(before, space.U)  # refreshed with this system's information
        # The carried pair satisfies A U = C with C orthonormal (to round-off).
        assert np.allclose(A @ space.U, space.C, atol=1e-8 * abs(space.C).max())
    with pytest.raises(ConfigError, match=r"^update_every="):
        gcrodr(mats[0], rhs[0], update_every=0)


def test_gcrodr_keeps_C_for_an_unchanged_matrix(monkeypatch):
    """Verify one probe product detects an unchanged matrix (saving k − 1 products) and a changed one rebuilds C."""
    from physim.solvers import recycling

    A = poisson_matrix(16)
    F = gaussian_random_field(3, 16, rng=2).reshape(3, -1)
    counts = {}
    for name, keep in (("kept", True), ("rebuilt", False)):
        if not keep:
            monkeypatch.setattr(recycling, "_same_operator", lambda *a, **kw: False)
        space = RecycleSpace(k=10)
        res = [gcrodr(A, f, rtol=1e-10, m=30, recycle=space) for f in F]
        assert all(bool(r.converged) and r.info["recycled"] for r in res[1:])
        counts[name] = [int(r.iterations) for r in res]
    assert counts["kept"][0] == counts["rebuilt"][0]
    # 10 products rebuild C, 1 probe keeps it; the cycles after it may differ by round-off only.
    assert all(abs(c - k - 9) <= 2 for c, k in zip(counts["rebuilt"][1:], counts["kept"][1:])), counts
    monkeypatch.undo()
    space = RecycleSpace(k=10)
    gcrodr(A, F[0], rtol=1e-10, m=30, recycle=space)
    assert not recycling._same_operator(space, lambda v: (2.0 * A) @ v, A.shape[0])
    assert recycling._same_operator(space, lambda v: A @ v, A.shape[0])


def test_bench_skr_ceiling_reports_iteration_ratios_against_gmres_and_checks_its_sweep(tmp_path, capsys):
    """Verify the ceiling script solves every swept GCRO-DR(m, k), writes its JSON, and rejects a bad --sweep."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_skr_ceiling.py"
    spec = importlib.util.spec_from_file_location("bench_skr_ceiling_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--size", "24", "--systems", "6", "--precond", "none", "--sweep", "20:5,30:10",
                       "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["m"], r["k"]) for r in rows] == [(40, 0), (20, 5), (30, 10)]
    assert rows[0]["iteration_ratio"] == 1.0 and all(r["products_mean"] > 0 for r in rows)
    # without a preconditioner GMRES(40) needs ~125 products here, and recycling cuts them (1.3-1.6x)
    assert max(r["iteration_ratio"] for r in rows[1:]) > 1.0
    assert "Best iteration ratio" in capsys.readouterr().out
    for bad in ("20", "5:20", "a:b"):
        with pytest.raises(SystemExit, match="--sweep"):
            bench.main(["--sweep", bad, "--out", str(tmp_path)])
