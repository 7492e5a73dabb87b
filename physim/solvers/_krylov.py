"""Shared plumbing of the batched Krylov solvers: input checks, bookkeeping, the final verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from physim.config import check_int, check_range
from physim.errors import ConfigError
from physim.solvers.operators import LinearOperator, as_operator, check_rhs
from physim.solvers.preconditioners import Preconditioner, make_preconditioner
from physim.solvers.result import SolveResult

__all__ = ["Problem", "bdot", "check_spd_preconditioner", "finish", "initial_residual", "prepare", "start", "verify"]


def bdot(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Row-wise inner products of two (B, n) batches, shape (B,)."""
    return (X * Y).sum(-1)


@dataclass
class Problem:
    """A checked batched linear system, ready to iterate on (all vectors of shape (B, n))."""

    method: str
    A: LinearOperator
    M: Callable[[torch.Tensor], torch.Tensor] | None
    b: torch.Tensor
    x0: torch.Tensor
    x0_is_zero: bool
    tol: torch.Tensor
    maxiter: int
    squeeze: bool
    raise_on_fail: bool

    def precondition(self, R: torch.Tensor) -> torch.Tensor:
        return R if self.M is None else self.M(R)


def prepare(
    method: str,
    A: object,
    b: object,
    *,
    x0: object,
    M: object,
    rtol: float,
    atol: float,
    maxiter: int | None,
    raise_on_fail: bool,
    symmetric: bool = False,
    spd_preconditioner: bool = False,
) -> Problem:
    """Check every argument of a Krylov solve and wrap it; raises `ConfigError` on bad input.

    Args:
        symmetric: The method needs a symmetric A (CG, MINRES): an explicit non-symmetric
            matrix is refused.
        spd_preconditioner: The method needs a symmetric positive definite M (CG, MINRES).
    """
    check_range("rtol", rtol, 0.0, 1.0)
    check_range("atol", atol, 0.0)
    if rtol == 0.0 and atol == 0.0:
        raise ConfigError("rtol", rtol, "rtol > 0 or atol > 0 (both zero can never be met)")
    b = check_rhs(b)
    squeeze = b.ndim == 1
    B = b if b.ndim == 2 else b.unsqueeze(0)
    batch, n = B.shape
    if maxiter is None:
        maxiter = 10 * n
    check_int("maxiter", maxiter, 1)
    op = as_operator(A, n=n, batch=batch, dtype=B.dtype, device=B.device, name="A")
    if symmetric:
        err = op.symmetry_error()
        limit = 1e-10 if B.dtype == torch.float64 else 1e-5
        if err is not None and err > limit:
            raise ConfigError("A", f"non-symmetric matrix (‖A − Aᵀ‖/‖A‖ = {err:.2e})",
                              f"a symmetric operator for {method}; use gmres or bicgstab for non-symmetric systems")
    if x0 is None:
        X0, zero = torch.zeros_like(B), True
    else:
        X0 = check_rhs(x0, "x0")
        X0 = X0 if X0.ndim == 2 else X0.unsqueeze(0)
        if X0.shape != B.shape:
            raise ConfigError("x0", f"tensor of shape {tuple(x0.shape)}", f"the shape of b, {tuple(b.shape)}")
        X0, zero = X0.to(device=B.device, dtype=B.dtype).clone(), False
    prec = make_preconditioner(M, op, n=n, batch=batch)
    if spd_preconditioner and prec is not None:
        check_spd_preconditioner(prec, method, batch=batch, n=n, dtype=B.dtype, device=B.device)
    tol = torch.clamp(rtol * torch.linalg.vector_norm(B, dim=-1), min=atol)
    return Problem(method, op, prec, B, X0, zero, tol, maxiter, squeeze, raise_on_fail)


def check_spd_preconditioner(M, method: str, *, batch: int, n: int, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a preconditioner that is not symmetric positive definite (CG and MINRES need one).

    A `Preconditioner` declares its properties; any other M is probed with two random vectors
    per system: |vᵀMu − uᵀMv| must be at round-off level and uᵀMu > 0.
    """
    expected = (f"a symmetric positive definite preconditioner for {method} (jacobi with a positive diagonal, "
                "ichol or amg); use ilu with gmres or bicgstab")
    if isinstance(M, Preconditioner):
        if not (M.symmetric and M.positive_definite):
            kind = "non-symmetric" if not M.symmetric else "indefinite"
            raise ConfigError("M", f"{kind} preconditioner {M.name!r}", expected)
        return
    gen = torch.Generator(device="cpu").manual_seed(1234)
    U = torch.randn(batch, n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    V = torch.randn(batch, n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    MU, MV = M(U), M(V)
    scale = (torch.linalg.vector_norm(U, dim=-1) * torch.linalg.vector_norm(MV, dim=-1)
             + torch.linalg.vector_norm(V, dim=-1) * torch.linalg.vector_norm(MU, dim=-1))
    asym = (bdot(V, MU) - bdot(U, MV)).abs() / scale.clamp_min(torch.finfo(dtype).tiny)
    limit = 1e-8 if dtype == torch.float64 else 1e-4
    if bool((asym > limit).any()):
        raise ConfigError("M", f"non-symmetric preconditioner (|vᵀMu − uᵀMv| / scale = {float(asym.max()):.2e})",
                          expected)
    if bool((bdot(U, MU) <= 0).any() or (bdot(V, MV) <= 0).any()):
        raise ConfigError("M", "indefinite preconditioner (uᵀMu ≤ 0 for a random u)", expected)


def finish(problem: Problem, X: torch.Tensor, history: list[torch.Tensor], iterations: torch.Tensor,
           rn: torch.Tensor, info: dict | None = None) -> SolveResult:
    """Decide convergence from the true residual norms `rn` and build the `SolveResult` (raise on request)."""
    converged = rn <= problem.tol
    residuals = torch.stack(history, dim=-1)
    residuals[:, -1] = rn
    if problem.squeeze:
        X, converged, iterations, residuals, tol = X[0], converged[0], iterations[0], residuals[0], problem.tol[0]
    else:
        tol = problem.tol
    result = SolveResult(X, converged, iterations, residuals, tol, problem.method, dict(info or {}))
    if problem.raise_on_fail:
        result.raise_if_not_converged()
    return result


def initial_residual(problem: Problem) -> torch.Tensor:
    """b − A x0, with the product skipped when x0 is the zero initial guess."""
    return problem.b.clone() if problem.x0_is_zero else problem.b - problem.A(problem.x0)


def start(problem: Problem):
    """The state every solver starts from: (X, R, ‖R‖, history, iteration counts, active mask)."""
    X, R = problem.x0, initial_residual(problem)
    rn = torch.linalg.vector_norm(R, dim=-1)
    its = torch.zeros(rn.shape, dtype=torch.int64, device=rn.device)
    return X, R, rn, [rn], its, rn > problem.tol


def verify(problem: Problem, X: torch.Tensor, history: list[torch.Tensor]):
    """Recompute the true residual after a run of a recurrence (it, not the recurrence, decides).

    Replaces the last history entry with it and returns (R, ‖R‖, active mask).
    """
    R = problem.b - problem.A(X)
    rn = torch.linalg.vector_norm(R, dim=-1)
    history[-1] = rn
    return R, rn, rn > problem.tol
