"""Krylov solvers for symmetric systems: preconditioned CG (SPD) and MINRES (symmetric indefinite).

Both run a batch of B independent systems at once on torch tensors (CPU or CUDA); a system
that has converged stops changing while the others go on. After the recurrence reports
convergence the true residual b − A x is recomputed; if it disagrees (round-off drift), the
recurrence restarts from the current iterate, within `maxiter`.
"""

from __future__ import annotations

import torch

from physim.errors import ConfigError
from physim.solvers._krylov import bdot, finish, prepare, start, verify
from physim.solvers.result import SolveResult

__all__ = ["cg", "minres"]

_MAX_REFINEMENTS = 5  # restarts from the true residual before giving up on round-off drift


def _sdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b where b ≠ 0, else 0 (rows of the batch that have stopped must not produce NaN)."""
    nz = b != 0
    return torch.where(nz, a / torch.where(nz, b, torch.ones_like(b)), torch.zeros_like(a))


def _not_spd_M(value: torch.Tensor, method: str) -> ConfigError:
    return ConfigError("M", f"preconditioner with rᵀMr = {float(value):.3e} < 0 during {method}",
                       f"a symmetric positive definite preconditioner for {method}")


def cg(
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
    """Solve A x = b by (preconditioned) conjugate gradients, for symmetric positive definite A.

    Args:
        A: SPD operator, (n, n) or (B, n, n) dense, sparse, or a callable X (B, n) ↦ A X
            (see `physim.solvers.operators`).
        b: Right-hand side(s), shape (n,) or (B, n).
        x0: Initial guess, shape of b (default zeros).
        M: Preconditioner M ≈ A⁻¹, SPD: a name (``"jacobi"``, ``"ichol"``, ``"amg"``), a
            `Preconditioner`, a matrix or a callable.
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Iteration limit (default 10 n).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; iterations count matrix-vector products with A.

    Raises:
        ConfigError: bad shapes, NaN/inf, a non-symmetric explicit A, a preconditioner that is
            not SPD, or pᵀAp ≤ 0 met during the iteration (A not positive definite).
    """
    P = prepare("cg", A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, raise_on_fail=raise_on_fail,
                symmetric=True, spd_preconditioner=True)
    X, R, rn, history, its, active = start(P)
    k, refinements = 0, 0
    while bool(active.any()) and k < P.maxiter:
        Z = P.precondition(R)
        rz = bdot(R, Z)
        D = Z.clone()
        while k < P.maxiter:
            AD = P.A(D)
            dAd = bdot(D, AD)
            bad = active & (dAd <= 0)
            if bool(bad.any()):
                raise ConfigError("A", f"operator with pᵀAp = {float(dAd[bad].min()):.3e} ≤ 0 at iteration {k}",
                                  "a symmetric positive definite operator for cg; use minres for symmetric "
                                  "indefinite or gmres/bicgstab for non-symmetric systems")
            alpha = torch.where(active, _sdiv(rz, dAd), torch.zeros_like(rz))
            X = X + alpha[:, None] * D
            R = R - alpha[:, None] * AD
            its += active
            k += 1
            rn = torch.where(active, torch.linalg.vector_norm(R, dim=-1), rn)
            history.append(rn)
            active = active & (rn > P.tol)
            if not bool(active.any()):
                break
            Z = P.precondition(R)
            rz_new = bdot(R, Z)
            neg = active & (rz_new < 0)
            if bool(neg.any()):
                raise _not_spd_M(rz_new[neg].min(), "cg")
            beta = torch.where(active, _sdiv(rz_new, rz), torch.zeros_like(rz))
            D = Z + beta[:, None] * D
            rz = rz_new
        R, rn, active = verify(P, X, history)  # the true residual decides
        refinements += 1
        if refinements > _MAX_REFINEMENTS:
            break
    return finish(P, X, history, its, rn, {"matvecs": k + refinements})


def minres(
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
    """Solve A x = b by MINRES (Paige & Saunders 1975) for symmetric, possibly indefinite A.

    The recurrence is the one of scipy's ``minres``, batched; the residual b − A x is carried
    along (through A w, from the same product A v) so the history holds 2-norms even with a
    preconditioner.

    Args:
        A: Symmetric operator (indefinite allowed), same forms as for `cg`.
        b: Right-hand side(s), shape (n,) or (B, n).
        x0: Initial guess (default zeros).
        M: Symmetric positive definite preconditioner (MINRES cannot use an indefinite one).
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Iteration limit (default 10 n).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; iterations count matrix-vector products with A.
    """
    P = prepare("minres", A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, raise_on_fail=raise_on_fail,
                symmetric=True, spd_preconditioner=True)
    X, R, rn, history, its, active = start(P)
    k, refinements = 0, 0
    tiny = torch.finfo(P.b.dtype).tiny
    while bool(active.any()) and k < P.maxiter:
        r1 = R.clone()
        y = P.precondition(r1)
        beta1sq = bdot(r1, y)
        if bool((active & (beta1sq < 0)).any()):
            raise _not_spd_M(beta1sq[active].min(), "minres")
        beta = beta1sq.clamp_min(0).sqrt()
        zero = torch.zeros_like(beta)
        oldb, dbar, epsln, phibar = zero, zero, zero, beta.clone()
        cs, sn = -torch.ones_like(beta), zero
        w = torch.zeros_like(R)
        w2, Aw, Aw2 = w.clone(), w.clone(), w.clone()
        r2 = r1
        first = True
        while k < P.maxiter:
            v = _sdiv(torch.ones_like(beta), beta)[:, None] * y
            Av = P.A(v)
            y = Av if first else Av - _sdiv(beta, oldb)[:, None] * r1
            first = False
            alfa = bdot(v, y)
            y = y - _sdiv(alfa, beta)[:, None] * r2
            r1, r2 = r2, y
            y = P.precondition(r2)
            oldb = beta
            beta2 = bdot(r2, y)
            if bool((active & (beta2 < 0)).any()):
                raise _not_spd_M(beta2[active].min(), "minres")
            beta = beta2.clamp_min(0).sqrt()
            oldeps = epsln
            delta = cs * dbar + sn * alfa
            gbar = sn * dbar - cs * alfa
            epsln = sn * beta
            dbar = -cs * beta
            gamma = torch.hypot(gbar, beta).clamp_min(tiny)
            cs, sn = gbar / gamma, beta / gamma
            phi = cs * phibar
            phibar = sn * phibar
            w1, w2 = w2, w
            w = (v - oldeps[:, None] * w1 - delta[:, None] * w2) / gamma[:, None]
            Aw1, Aw2 = Aw2, Aw
            Aw = (Av - oldeps[:, None] * Aw1 - delta[:, None] * Aw2) / gamma[:, None]
            phi = torch.where(active, phi, zero)
            X = X + phi[:, None] * w
            R = R - phi[:, None] * Aw
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
    return finish(P, X, history, its, rn, {"matvecs": k + refinements})
