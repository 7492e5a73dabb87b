"""Restarted GMRES(m) and BiCGStab for general (non-symmetric) systems, batched on torch tensors.

GMRES is right-preconditioned (A M y = b, x = M y), so the residual it minimises and reports is
the true residual of the original system. The Arnoldi basis is orthogonalised by classical
Gram–Schmidt applied twice (as accurate as modified Gram–Schmidt, but two batched matrix
products per step instead of a loop). BiCGStab is van der Vorst's method with right
preconditioning and a restart of the shadow residual on breakdown.
"""

from __future__ import annotations

import torch

from physim.config import check_int
from physim.solvers._krylov import bdot, finish, prepare, start, verify
from physim.solvers.krylov_symmetric import _sdiv
from physim.solvers.result import SolveResult

__all__ = ["bicgstab", "gmres"]

_MAX_REFINEMENTS = 5  # BiCGStab restarts from the true residual before giving up on round-off drift


def gmres(
    A: object,
    b: object,
    *,
    x0: object = None,
    M: object = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    restart: int = 40,
    maxiter: int | None = None,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve A x = b by restarted GMRES(m) with right preconditioning.

    Args:
        A: Square operator: (n, n) or (B, n, n) dense, sparse, or a callable X (B, n) ↦ A X.
        b: Right-hand side(s), shape (n,) or (B, n).
        x0: Initial guess (default zeros).
        M: Preconditioner M ≈ A⁻¹ (any; it need not be symmetric): ``"jacobi"``, ``"ilu"``,
            ``"ichol"``, ``"amg"``, a `Preconditioner`, a matrix or a callable.
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        restart: Krylov subspace dimension m between restarts.
        maxiter: Limit on the total number of Arnoldi steps (default 10 n).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; iterations count Arnoldi steps (products with A M), ``info["restarts"]``
        the number of restart cycles.
    """
    check_int("restart", restart, 1)
    P = prepare("gmres", A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, raise_on_fail=raise_on_fail)
    X, R, rn, history, its, active = start(P)
    batch, n = R.shape
    m = min(restart, n)
    k, cycles = 0, 0
    dtype, dev = R.dtype, R.device
    while bool(active.any()) and k < P.maxiter:
        cycles += 1
        V = torch.zeros(batch, m + 1, n, dtype=dtype, device=dev)
        H = torch.zeros(batch, m + 1, m, dtype=dtype, device=dev)
        cs = torch.zeros(batch, m, dtype=dtype, device=dev)
        sn = torch.zeros(batch, m, dtype=dtype, device=dev)
        g = torch.zeros(batch, m + 1, dtype=dtype, device=dev)
        g[:, 0] = torch.where(active, rn, torch.zeros_like(rn))
        V[:, 0] = _sdiv(torch.ones_like(rn), rn)[:, None] * R
        ncols = torch.zeros(batch, dtype=torch.int64, device=dev)  # columns of H each system uses
        inner = active.clone()
        j = 0
        while j < m and k < P.maxiter:
            w = P.A(P.precondition(V[:, j]))
            Vj = V[:, : j + 1]
            h = torch.einsum("bkn,bn->bk", Vj, w)
            w = w - torch.einsum("bkn,bk->bn", Vj, h)
            h2 = torch.einsum("bkn,bn->bk", Vj, w)  # second pass: classical Gram-Schmidt twice
            w = w - torch.einsum("bkn,bk->bn", Vj, h2)
            h = h + h2
            hn = torch.linalg.vector_norm(w, dim=-1)
            V[:, j + 1] = _sdiv(torch.ones_like(hn), hn)[:, None] * w
            col = torch.cat([h, hn[:, None]], dim=1)  # (batch, j + 2)
            for i in range(j):  # apply the earlier Givens rotations to the new column
                a, c = col[:, i].clone(), col[:, i + 1].clone()
                col[:, i] = cs[:, i] * a + sn[:, i] * c
                col[:, i + 1] = -sn[:, i] * a + cs[:, i] * c
            a, c = col[:, j], col[:, j + 1]
            denom = torch.hypot(a, c)
            ok = denom > 0
            cs[:, j] = torch.where(ok, a / torch.where(ok, denom, torch.ones_like(denom)), torch.ones_like(a))
            sn[:, j] = torch.where(ok, c / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(c))
            col[:, j] = denom
            col[:, j + 1] = 0
            H[:, : j + 2, j] = col
            g[:, j + 1] = -sn[:, j] * g[:, j]
            g[:, j] = cs[:, j] * g[:, j]
            its += inner
            ncols += inner
            k += 1
            j += 1
            res = g[:, j].abs()
            rn = torch.where(inner, res, rn)
            history.append(rn)
            inner = inner & (res > P.tol)
            if not bool(inner.any()):
                break
        # Least-squares update with the leading ncols × ncols triangle of H per system.
        J = j
        idx = torch.arange(J, device=dev)
        used = idx[None, :] < ncols[:, None]  # (batch, J)
        Hj = H[:, :J, :J] * (used[:, :, None] & used[:, None, :])
        Hj = Hj + torch.diag_embed((~used).to(dtype))  # identity on unused columns keeps it solvable
        diag = torch.diagonal(Hj, dim1=-2, dim2=-1)
        Hj = Hj + torch.diag_embed((diag == 0).to(dtype))  # exact breakdown on a used column: y_j = 0
        gj = torch.where(used, g[:, :J], torch.zeros_like(g[:, :J]))
        y = torch.linalg.solve_triangular(Hj, gj.unsqueeze(-1), upper=True).squeeze(-1)
        update = torch.einsum("bkn,bk->bn", V[:, :J], y)
        X = X + P.precondition(update)
        # The true residual decides; a cycle that stagnates simply runs on, within maxiter, like scipy's gmres.
        R, rn, active = verify(P, X, history)
    return finish(P, X, history, its, rn, {"restarts": cycles, "matvecs": k + cycles})


def bicgstab(
    A: object,
    b: object,
    *,
    x0: object = None,
    M: object = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve A x = b by BiCGStab (van der Vorst 1992) with right preconditioning.

    Args:
        A: Square operator: (n, n) or (B, n, n) dense, sparse, or a callable X (B, n) ↦ A X.
        b: Right-hand side(s), shape (n,) or (B, n).
        x0: Initial guess (default zeros).
        M: Preconditioner M ≈ A⁻¹ (any kind).
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Iteration limit (default 10 n); one iteration costs two products with A.
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; ``info["breakdowns"]`` counts restarts of the shadow residual.
    """
    P = prepare("bicgstab", A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, raise_on_fail=raise_on_fail)
    X, R, rn, history, its, active = start(P)
    eps = torch.finfo(R.dtype).eps
    k, refinements, breakdowns = 0, 0, 0
    while bool(active.any()) and k < P.maxiter:
        Rhat = R.clone()
        one = torch.ones_like(rn)
        rho, alpha, omega = one.clone(), one.clone(), one.clone()
        Vv = torch.zeros_like(R)
        Pp = torch.zeros_like(R)
        while k < P.maxiter:
            rho_new = bdot(Rhat, R)
            # Breakdown (rho ≈ 0 or omega = 0): restart the shadow residual for those systems.
            brk = active & ((rho_new.abs() <= eps**2 * torch.linalg.vector_norm(Rhat, dim=-1) * rn) | (omega == 0))
            if bool(brk.any()):
                breakdowns += int(brk.sum())
                Rhat = torch.where(brk[:, None], R, Rhat)
                Vv = torch.where(brk[:, None], torch.zeros_like(Vv), Vv)
                Pp = torch.where(brk[:, None], torch.zeros_like(Pp), Pp)
                rho = torch.where(brk, one, rho)
                alpha = torch.where(brk, one, alpha)
                omega = torch.where(brk, one, omega)
                rho_new = bdot(Rhat, R)
            beta = _sdiv(rho_new, rho) * _sdiv(alpha, omega)
            Pp = R + beta[:, None] * (Pp - omega[:, None] * Vv)
            Ph = P.precondition(Pp)
            Vv = P.A(Ph)
            alpha = torch.where(active, _sdiv(rho_new, bdot(Rhat, Vv)), torch.zeros_like(rho_new))
            S = R - alpha[:, None] * Vv
            sn = torch.linalg.vector_norm(S, dim=-1)
            half = sn <= P.tol  # converged after the first half-step: no stabilisation step
            Sh = P.precondition(S)
            T = P.A(Sh)
            omega = torch.where(active & ~half, _sdiv(bdot(T, S), bdot(T, T)), torch.zeros_like(alpha))
            X = X + alpha[:, None] * Ph + omega[:, None] * Sh
            R = torch.where(active[:, None], S - omega[:, None] * T, R)
            omega = torch.where(half & active, one, omega)  # a finished system must not trigger a restart
            rho = rho_new
            its += active
            k += 1
            rn = torch.where(active, torch.linalg.vector_norm(R, dim=-1), rn)
            history.append(rn)
            active = active & (rn > P.tol)
            if not bool(active.any()):
                break
        R, rn, active = verify(P, X, history)  # the true residual decides
        refinements += 1
        if refinements > _MAX_REFINEMENTS:
            break
    return finish(P, X, history, its, rn, {"matvecs": 2 * k + refinements, "breakdowns": breakdowns})
