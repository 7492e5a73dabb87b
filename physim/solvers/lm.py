"""Batched Levenberg–Marquardt for nonlinear least squares, differentiable by implicit differentiation.

    min_x ½‖r(x, θ)‖²   for a batch of B independent problems, x of shape (B, p), r of shape (B, m).

The Jacobian comes from forward-mode autodiff (p Jacobian-vector products, vectorised with
``torch.func.vmap``), the damped normal equations (JᵀJ + λD) δ = −Jᵀr are solved densely per
system (p is small: basis coefficients, material parameters), and λ follows Nielsen's update.
With ``implicit=True`` the returned x*(θ) is differentiable w.r.t. every tensor in ``args``
through the optimality condition F(x, θ) = J(x, θ)ᵀ r(x, θ) = 0 (`custom_root`), with the exact
Hessian of ½‖r‖² (second-order terms included), not the Gauss–Newton approximation.

    def residual(w, basis, target):            # w: (B, p), basis: (B, m, p), target: (B, m)
        return torch.tanh(torch.einsum("bmp,bp->bm", basis, w)) - target

    res = levenberg_marquardt(residual, w0, basis, target)   # res.x differentiable w.r.t. basis, target
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError
from physim.solvers.implicit import custom_root
from physim.solvers.result import NotConverged

__all__ = ["LMResult", "levenberg_marquardt"]


@dataclass(frozen=True)
class LMResult:
    """Outcome of `levenberg_marquardt` (per-system fields have shape (B,), or () for unbatched x0).

    Attributes:
        x: Solution, shape of x0; differentiable w.r.t. the tensor arguments when ``implicit``.
        cost: ½‖r(x)‖² at the solution.
        gradient_norm: ‖Jᵀr‖_∞ at the solution.
        iterations: LM iterations (accepted or rejected steps) per system.
        converged: Whether a stopping test (gtol, xtol or ftol) was met.
        reason: Per system, ``"gtol"``, ``"xtol"``, ``"ftol"`` or ``"max_iter"``.
        damping: Final damping λ.
    """

    x: torch.Tensor
    cost: torch.Tensor
    gradient_norm: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    reason: list[str]
    damping: torch.Tensor


def _jacobian(fn: Callable, X: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual (B, m) and Jacobian (B, m, p) of a row-wise residual function."""
    batch, p = X.shape
    if mode == "forward":
        r = fn(X)
        eye = torch.eye(p, dtype=X.dtype, device=X.device).unsqueeze(1).expand(p, batch, p)
        jv = torch.func.vmap(lambda t: torch.func.jvp(fn, (X,), (t,))[1])(eye)  # (p, B, m)
        return r, jv.permute(1, 2, 0)
    with torch.enable_grad():
        Xg = X.detach().requires_grad_(True)
        r = fn(Xg)
        rows = [torch.autograd.grad(r[:, i].sum(), Xg, retain_graph=True)[0] for i in range(r.shape[1])]
    return r.detach(), torch.stack(rows, dim=1)


def _lm_core(fn: Callable, X: torch.Tensor, *, max_iter: int, gtol: float, xtol: float, ftol: float,
             damping: float, scaling: str, mode: str):
    batch, p = X.shape
    r, J = _jacobian(fn, X, mode)
    if r.ndim != 2 or r.shape[0] != batch:
        raise ConfigError("residual_fn", f"returning shape {tuple(r.shape)}",
                          f"(B, m) with B = {batch} for x of shape (B, p)")
    if not bool(torch.isfinite(r).all()):
        raise ConfigError("x0", "a point where the residual is not finite", "a starting point with finite residuals")
    cost = 0.5 * (r * r).sum(-1)
    lam = torch.full((batch,), damping, dtype=X.dtype, device=X.device)
    nu = torch.full_like(lam, 2.0)
    its = torch.zeros(batch, dtype=torch.int64, device=X.device)
    reason = ["max_iter"] * batch
    active = torch.ones(batch, dtype=torch.bool, device=X.device)
    eye = torch.eye(p, dtype=X.dtype, device=X.device)
    g = torch.einsum("bmp,bm->bp", J, r)

    def stop(mask: torch.Tensor, why: str) -> None:
        for i in torch.nonzero(mask & active).flatten().tolist():
            reason[i] = why

    for _ in range(max_iter):
        gn = g.abs().amax(-1)
        done_g = active & (gn <= gtol)
        stop(done_g, "gtol")
        active = active & ~done_g
        if not bool(active.any()):
            break
        H = torch.einsum("bmp,bmq->bpq", J, J)
        D = torch.diagonal(H, dim1=-2, dim2=-1).clamp_min(torch.finfo(X.dtype).eps) if scaling == "marquardt" \
            else torch.ones(batch, p, dtype=X.dtype, device=X.device)
        A = H + lam[:, None, None] * torch.diag_embed(D) + torch.finfo(X.dtype).tiny * eye
        delta = -torch.linalg.solve(A, g.unsqueeze(-1)).squeeze(-1)
        delta = torch.where(active[:, None], delta, torch.zeros_like(delta))
        X_new = X + delta
        r_new, J_new = _jacobian(fn, X_new, mode)
        cost_new = 0.5 * (r_new * r_new).sum(-1)
        g_new = torch.einsum("bmp,bm->bp", J_new, r_new)
        predicted = -(g * delta).sum(-1) - 0.5 * torch.einsum("bp,bpq,bq->b", delta, H, delta)
        rho = (cost - cost_new) / predicted.clamp_min(torch.finfo(X.dtype).tiny)
        # Near the solution the decrease of the cost drowns in round-off (it is ~‖g‖²/‖H‖); a step
        # that keeps the cost within round-off and shrinks the gradient is still progress.
        flat = (cost_new - cost).abs() <= 16 * torch.finfo(X.dtype).eps * cost
        shrink = g_new.abs().amax(-1) < g.abs().amax(-1)
        accept = active & torch.isfinite(cost_new) & ((cost_new < cost) | (flat & shrink))
        its += active
        small_step = accept & (torch.linalg.vector_norm(delta, dim=-1)
                               <= xtol * (torch.linalg.vector_norm(X, dim=-1) + xtol))
        small_gain = accept & (cost - cost_new <= ftol * cost) & ~flat
        X = torch.where(accept[:, None], X_new, X)
        r = torch.where(accept[:, None], r_new, r)
        J = torch.where(accept[:, None, None], J_new, J)
        g = torch.where(accept[:, None], g_new, g)
        cost = torch.where(accept, cost_new, cost)
        rho = torch.where(flat, torch.ones_like(rho), rho)
        factor = torch.clamp(1 - (2 * rho - 1) ** 3, min=1.0 / 3.0)
        lam = torch.where(accept, lam * factor, torch.where(active, lam * nu, lam))
        nu = torch.where(accept, torch.full_like(nu, 2.0), torch.where(active, nu * 2, nu))
        stop(small_step, "xtol")
        stop(small_gain & ~small_step, "ftol")
        active = active & ~small_step & ~small_gain
    else:
        gn = g.abs().amax(-1)
        done = active & (gn <= gtol)
        stop(done, "gtol")
    gn = g.abs().amax(-1)
    converged = torch.tensor([why != "max_iter" for why in reason], device=X.device)
    return X, cost, gn, its, converged, reason, lam


def levenberg_marquardt(
    residual_fn: Callable,
    x0: torch.Tensor,
    *args,
    max_iter: int = 50,
    gtol: float = 1e-10,
    xtol: float = 1e-14,
    ftol: float = 1e-15,
    damping: float = 1e-3,
    scaling: str = "marquardt",
    jacobian: str = "forward",
    implicit: bool = True,
    implicit_solve: str = "dense",
    raise_on_fail: bool = False,
    **kwargs,
) -> LMResult:
    """Minimise ½‖r(x, *args)‖² by Levenberg–Marquardt, for a batch of problems at once.

    Args:
        residual_fn: r(x, *args, **kwargs): for x of shape (B, p) returns (B, m), row b depending
            only on row b of x (for x0 of shape (p,), it receives (p,) and returns (m,)).
        x0: Starting point, shape (B, p) or (p,).
        *args: Parameters θ of the residual (tensors or pytrees); x* is differentiable w.r.t. them.
        max_iter: LM iterations (the hard-constrained operators use ≤ 50).
        gtol: Stop a system when ‖Jᵀr‖_∞ ≤ gtol.
        xtol: Stop when an accepted step has ‖δ‖ ≤ xtol·(‖x‖ + xtol).
        ftol: Stop when an accepted step lowers ½‖r‖² by less than ftol·½‖r‖² (beyond round-off).
        damping: Initial λ.
        scaling: ``"marquardt"`` (λ·diag(JᵀJ)) or ``"identity"`` (λ·I, Levenberg).
        jacobian: ``"forward"`` (torch.func jvp, p products) or ``"reverse"`` (autograd, m products; for
            residuals built from old-style ``torch.autograd.Function``s).
        implicit: Attach implicit gradients w.r.t. the tensor arguments (`custom_root` on Jᵀr = 0).
        implicit_solve: Linear solver of the backward pass (``"dense"`` for small p, or
            ``"gmres"``/``"minres"``/``"cg"``…; the Hessian of ½‖r‖² is symmetric).
        raise_on_fail: Raise `NotConverged` when a system reaches max_iter without meeting a test.
        **kwargs: Passed to residual_fn (not differentiated).

    Returns:
        `LMResult`.
    """
    check_int("max_iter", max_iter, 1)
    check_range("gtol", gtol, 0.0)
    check_range("xtol", xtol, 0.0)
    check_range("ftol", ftol, 0.0)
    check_positive("damping", damping)
    check_choice("scaling", scaling, ("marquardt", "identity"))
    check_choice("jacobian", jacobian, ("forward", "reverse"))
    if not isinstance(x0, torch.Tensor) or x0.ndim not in (1, 2) or not x0.is_floating_point():
        raise ConfigError("x0", getattr(x0, "shape", type(x0).__name__), "a floating tensor of shape (p,) or (B, p)")
    if not bool(torch.isfinite(x0).all()):
        raise ConfigError("x0", "tensor with non-finite entries", "finite entries")
    squeeze = x0.ndim == 1

    def rows_fn(X: torch.Tensor, *a, **kw) -> torch.Tensor:
        return residual_fn(X[0], *a, **kw)[None] if squeeze else residual_fn(X, *a, **kw)

    out: dict = {}

    def solve(init: torch.Tensor, *a, **kw) -> torch.Tensor:
        res = _lm_core(lambda X: rows_fn(X, *a, **kw), init, max_iter=max_iter, gtol=gtol, xtol=xtol, ftol=ftol,
                       damping=damping, scaling=scaling, mode=jacobian)
        out["res"] = res
        return res[0]

    def normal_residual(X: torch.Tensor, *a, **kw) -> torch.Tensor:
        # F = Jᵀ r, the gradient of ½‖r‖²: zero at a (local) least-squares solution.
        if jacobian == "forward":
            r, vjp = torch.func.vjp(lambda Xv: rows_fn(Xv, *a, **kw), X)
            return vjp(r)[0]
        with torch.enable_grad():
            Xg = X if X.requires_grad else X.detach().requires_grad_(True)
            r = rows_fn(Xg, *a, **kw)
            return torch.autograd.grad(r, Xg, r, create_graph=True)[0]

    X0 = x0.detach()[None] if squeeze else x0.detach()
    if implicit:
        wrapped = custom_root(normal_residual, solve=implicit_solve, batched=True,
                              jacobian="func" if jacobian == "forward" else "autograd", residual_tol=None)(solve)
        X = wrapped(X0, *args, **kwargs)
    else:
        with torch.no_grad():
            X = solve(X0, *args, **kwargs)
    _, cost, gn, its, conv, reason, lam = out["res"]
    if raise_on_fail and not bool(conv.all()):
        worst = int(torch.argmax(torch.where(conv, torch.zeros_like(gn), gn)))
        raise NotConverged("levenberg_marquardt", int((~conv).sum()), conv.numel(), float(gn[worst]), gtol,
                           int(its[worst]))
    if squeeze:
        return LMResult(X[0], cost[0], gn[0], its[0], conv[0], reason, lam[0])
    return LMResult(X, cost, gn, its, conv, reason, lam)
