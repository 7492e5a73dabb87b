"""Verify the batched Krylov solvers against dense solves, and their handling of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim import solvers
from physim.errors import ConfigError
from physim.solvers.problems import poisson_matrix

N = 40
B = 3



def _systems(dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    Q = torch.randn(N, N, generator=gen, dtype=torch.float64)
    spd = Q @ Q.T / N + torch.eye(N, dtype=torch.float64)
    # Symmetric indefinite: eigenvalues of both signs, bounded away from zero.
    U, _ = torch.linalg.qr(Q)
    eig = torch.cat([torch.linspace(-3, -0.5, N // 2), torch.linspace(0.5, 4, N - N // 2)]).to(torch.float64)
    indef = U @ torch.diag(eig) @ U.T
    nonsym = torch.eye(N, dtype=torch.float64) * 3 + Q / N**0.5
    b = torch.randn(B, N, generator=gen, dtype=torch.float64)
    return {k: v.to(dtype) for k, v in {"spd": spd, "indef": indef, "nonsym": nonsym}.items()}, b.to(dtype)


CASES = [
    ("spd", "cg"), ("spd", "minres"), ("spd", "gmres"), ("spd", "bicgstab"),
    ("indef", "minres"), ("indef", "gmres"), ("indef", "bicgstab"),
    ("nonsym", "gmres"), ("nonsym", "bicgstab"),
]


@pytest.mark.parametrize(("kind", "method"), CASES)
def test_solver_matches_dense_solve(kind, method):
    """Verify each solver reproduces torch.linalg.solve on SPD, symmetric indefinite and non-symmetric systems."""
    mats, b = _systems()
    A = mats[kind]
    expected = torch.linalg.solve(A, b.T).T
    res = getattr(solvers, method)(A, b, rtol=1e-11, maxiter=4000)
    assert res.all_converged, (kind, method, res.residual_norm)
    assert torch.allclose(res.x, expected, rtol=1e-8, atol=1e-9)
    # The reported residual is the true one and meets the tolerance.
    true = torch.linalg.vector_norm(b - res.x @ A.T, dim=-1)
    assert torch.allclose(res.residual_norm, true, rtol=1e-6, atol=1e-14)
    assert bool((true <= res.tolerance).all())
    assert res.residuals.shape[0] == B and res.iterations.shape == (B,)


@pytest.mark.parametrize("method", ["cg", "gmres", "bicgstab", "minres"])
def test_single_rhs_callable_and_x0(method):
    """Verify a callable operator, an unbatched right-hand side and an initial guess."""
    mats, b = _systems()
    A = mats["spd"]
    x_true = torch.linalg.solve(A, b[0])
    x0 = x_true + 1e-3 * torch.ones(N, dtype=torch.float64)
    res = getattr(solvers, method)(lambda X: X @ A.T, b[0], x0=x0, rtol=1e-10)
    assert res.x.shape == (N,) and res.converged.ndim == 0 and bool(res.converged)
    assert torch.allclose(res.x, x_true, atol=1e-8)
    # Starting next to the solution takes fewer iterations than from zero.
    cold = getattr(solvers, method)(lambda X: X @ A.T, b[0], rtol=1e-10)
    assert int(res.iterations) <= int(cold.iterations)


def test_batched_matrices_and_float32():
    """Verify one matrix per system (B, n, n) and float32 solves at float32 accuracy."""
    mats, b = _systems(torch.float32)
    A = torch.stack([mats["spd"], mats["spd"] * 2, mats["spd"] + torch.eye(N)])
    res = solvers.cg(A, b, rtol=1e-5)
    expected = torch.linalg.solve(A.double(), b.double().unsqueeze(-1)).squeeze(-1)
    assert res.x.dtype == torch.float32 and res.all_converged
    assert torch.allclose(res.x.double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("method", "M"), [
    ("cg", "jacobi"), ("cg", "ichol"), ("cg", "amg"), ("minres", "amg"),
    ("gmres", "ilu"), ("gmres", "amg"), ("bicgstab", "ilu"), ("bicgstab", "jacobi"),
])
def test_preconditioners_on_sparse_poisson(method, M):
    """Verify the sparse preconditioners reach the solution of a 2-D Poisson problem in fewer iterations."""
    A = poisson_matrix(16)
    b = torch.randn(2, A.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.from_numpy(np.linalg.solve(A.toarray(), b.numpy().T).T)
    plain = getattr(solvers, method)(A, b, rtol=1e-9)
    pre = getattr(solvers, method)(A, b, M=M, rtol=1e-9)
    assert pre.all_converged and plain.all_converged
    assert torch.allclose(pre.x, expected, rtol=1e-6, atol=1e-9)
    if M != "jacobi":  # the Poisson diagonal is constant: Jacobi only rescales
        assert int(pre.iterations.max()) < int(plain.iterations.max())


def test_ichol_is_exact_for_tridiagonal():
    """Verify IC(0) of a tridiagonal SPD matrix is its exact Cholesky factor: PCG takes one step."""
    n = 50
    A = sp.diags([-np.ones(n - 1), 2.5 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")
    res = solvers.cg(A, torch.ones(n, dtype=torch.float64), M="ichol", rtol=1e-12)
    assert bool(res.converged) and int(res.iterations) == 1


def test_non_convergence_is_flagged_and_raises_on_request():
    """Verify a solve stopped by maxiter reports converged=False with its residual, and raises when asked."""
    A = poisson_matrix(20)
    b = torch.ones(A.shape[0], dtype=torch.float64)
    res = solvers.cg(A, b, rtol=1e-10, maxiter=5)
    assert not bool(res.converged) and int(res.iterations) == 5
    assert float(res.residual_norm) > float(res.tolerance)
    with pytest.raises(solvers.NotConverged, match=r"cg did not converge for 1 of 1 system\(s\): residual"):
        solvers.cg(A, b, rtol=1e-10, maxiter=5, raise_on_fail=True)
    with pytest.raises(solvers.NotConverged):
        res.raise_if_not_converged()
    g = solvers.gmres(A, b, rtol=1e-10, maxiter=7, restart=3)
    assert not bool(g.converged) and int(g.iterations) == 7


def test_zero_rhs_and_converged_rows_stop():
    """Verify b = 0 returns x = 0 at once, and a solved row of a batch stops counting iterations."""
    mats, b = _systems()
    A = mats["spd"]
    b2 = torch.stack([torch.zeros(N, dtype=torch.float64), b[0]])
    res = solvers.cg(A, b2, rtol=1e-10)
    assert res.iterations[0] == 0 and bool((res.x[0] == 0).all()) and res.all_converged
    assert res.iterations[1] > 0


def _poison(t: torch.Tensor, value: float) -> torch.Tensor:
    out = t.clone()
    out[0, 1 % t.shape[1]] = value
    return out


BAD = [
    (lambda A, b: solvers.cg(A[:, :-1], b), "A", "square"),
    (lambda A, b: solvers.gmres(A, b[:, :-1]), "A", "to match b"),
    (lambda A, b: solvers.gmres(A, torch.ones(2, 3, 4, dtype=torch.float64)), "b", r"\(n,\) or \(B, n\)"),
    (lambda A, b: solvers.cg(_poison(A, float("nan")), b), "A", "non-finite"),
    (lambda A, b: solvers.cg(sp.csr_matrix(_poison(A, float("nan")).numpy()), b), "A", "non-finite"),
    (lambda A, b: solvers.cg(A, _poison(b, float("inf"))), "b", "non-finite"),
    (lambda A, b: solvers.cg(A, b, x0=torch.zeros(5, dtype=torch.float64)), "x0", "shape of b"),
    (lambda A, b: solvers.cg(A, b, rtol=0.0), "rtol", "rtol > 0 or atol > 0"),
    (lambda A, b: solvers.cg(A, b, M="ilu"), "M", "symmetric positive definite preconditioner"),
    (lambda A, b: solvers.cg(A, b, M=lambda R: R * torch.linspace(-1, 1, R.shape[-1], dtype=R.dtype)), "M",
     "indefinite"),
    (lambda A, b: solvers.cg(A, b, M=lambda R: R @ torch.triu(torch.ones(R.shape[-1], R.shape[-1],
                                                                           dtype=R.dtype)).T), "M", "non-symmetric"),
    (lambda A, b: solvers.cg(A + torch.triu(A, 1), b), "A", "non-symmetric"),
    (lambda A, b: solvers.gmres(lambda X: X[:, :-1], b), "A", "callable returning"),
    (lambda A, b: solvers.gmres(A, b, M="bogus"), "M", "one of"),
    (lambda A, b: solvers.gmres(object(), b), "A", "a matrix"),
]


@pytest.mark.parametrize(("call", "field", "text"), BAD)
def test_bad_input_names_the_argument(call, field, text):
    """Verify every kind of bad input raises one ConfigError naming the argument, before iterating."""
    mats, b = _systems()
    with pytest.raises(ConfigError, match=rf"^{field}=.*{text}"):
        call(mats["spd"], b)


def test_cg_refuses_indefinite_operator():
    """Verify CG stops with an error naming A when it meets pᵀAp ≤ 0 (A not positive definite)."""
    mats, b = _systems()
    with pytest.raises(ConfigError, match=r"^A=.*pᵀAp .* use minres"):
        solvers.cg(lambda X: X @ mats["indef"].T, b, rtol=1e-10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["cg", "minres", "gmres", "bicgstab"])
def test_solvers_on_cuda(method):
    """Verify the batched solvers run on CUDA tensors (dense, sparse CSR and Jacobi) and agree with the CPU."""
    mats, b = _systems()
    A = mats["spd"].cuda()
    res = getattr(solvers, method)(A, b.cuda(), M="jacobi", rtol=1e-10)
    assert res.x.is_cuda and res.all_converged
    assert torch.allclose(res.x.cpu(), torch.linalg.solve(mats["spd"], b.T).T, atol=1e-8)
    L = poisson_matrix(12)
    bs = torch.ones(2, L.shape[0], dtype=torch.float64, device="cuda")
    res = getattr(solvers, method)(L, bs, rtol=1e-10)
    assert res.x.is_cuda and res.all_converged
