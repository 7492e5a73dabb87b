"""Implicit differentiation: gradients of a solver's output through the implicit function theorem.

A solver returns x*(θ) with F(x*(θ), θ) = 0. Instead of differentiating through its
iterations, `custom_root` attaches the gradient the implicit function theorem gives:

    ∂x*/∂θ = −(∂F/∂x)⁻¹ ∂F/∂θ,   so for a cotangent g:   u = (∂F/∂x)⁻ᵀ g,   ḡ_θ = −(∂F/∂θ)ᵀ u.

The transposed system is solved matrix-free with products u ↦ (∂F/∂x)ᵀ u (vector-Jacobian
products of F) by GMRES by default — physics Jacobians are non-symmetric, and solving the
normal equations with CG would square their condition number — or BiCGStab, CG/MINRES when F
is a gradient (symmetric Jacobian), or a dense solve for small x. The design follows JAXopt's
``custom_root``/``custom_fixed_point`` (Blondel et al., "Efficient and Modular Implicit
Differentiation", 2022), written here on torch.

    def F(w, lam, X, y):                       # optimality condition of ridge regression
        return X.T @ (X @ w - y) + lam * w

    @custom_root(F, solve="cg")
    def ridge(w0, lam, X, y):
        return physim.solvers.cg(X.T @ X + lam * torch.eye(d), X.T @ y, rtol=1e-12).x

    w = ridge(torch.zeros(d), lam, X, y)       # differentiable w.r.t. lam, X and y
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch.utils import _pytree as pytree

from physim.config import check_choice
from physim.errors import ConfigError

__all__ = ["IMPLICIT_SOLVES", "ImplicitGradientWarning", "custom_fixed_point", "custom_root", "root_vjp"]

IMPLICIT_SOLVES = ("gmres", "bicgstab", "cg", "minres", "dense")


class ImplicitGradientWarning(UserWarning):
    """The forward solution does not satisfy its optimality condition well: the implicit gradient is inexact."""


def _linear_solve(solve: str | Callable, matvec: Callable, rhs: torch.Tensor, solve_kwargs: dict) -> torch.Tensor:
    """Solve matvec(U) = rhs for U of shape (B, N), each row an independent system."""
    if callable(solve):
        return solve(matvec, rhs)
    if solve == "dense":
        batch, n = rhs.shape
        eye = torch.eye(n, dtype=rhs.dtype, device=rhs.device)
        # Column j of the (B, N, N) operator is matvec(e_j); one product per unknown.
        cols = [matvec(eye[j].expand(batch, n).contiguous()) for j in range(n)]
        mat = torch.stack(cols, dim=-1)
        return torch.linalg.solve(mat, rhs.unsqueeze(-1)).squeeze(-1)
    from physim import solvers

    kwargs = {"rtol": 1e-10 if rhs.dtype == torch.float64 else 1e-5, "raise_on_fail": True}
    kwargs.update(solve_kwargs)
    return getattr(solvers, solve)(matvec, rhs, **kwargs).x


def root_vjp(
    optimality_fn: Callable,
    x_star: torch.Tensor,
    args: tuple,
    kwargs: dict,
    cotangent: torch.Tensor,
    *,
    solve: str | Callable = "gmres",
    batched: bool = False,
    jacobian: str = "func",
    solve_kwargs: dict | None = None,
    residual_tol: float | None = 1e-6,
) -> list[torch.Tensor | None]:
    """Gradients of ⟨cotangent, x*(θ)⟩ w.r.t. every tensor leaf of `args` (None where not needed).

    This is the backward pass of `custom_root`, usable on its own (e.g. inside a hand-written
    ``torch.autograd.Function``).

    Args:
        optimality_fn: F(x, *args, **kwargs), same shape as x, zero at the solution.
        x_star: The solution, shape (B, ...) if `batched` else any shape.
        args: Positional arguments of F (tensors, or pytrees of tensors, or anything else).
        kwargs: Keyword arguments of F (not differentiated).
        cotangent: ∂L/∂x*, shape of x_star.
        solve: Linear solver for (∂F/∂x)ᵀ u = cotangent (see `custom_root`).
        batched: Rows of x_star are independent problems (∂F/∂x is block diagonal).
        jacobian: ``"func"`` (torch.func.vjp) or ``"autograd"`` (a retained autograd graph; for
            F built from ``torch.autograd.Function``s without functorch support, such as the
            Warp/Taichi bridges).
        solve_kwargs: Extra arguments of the iterative solver (rtol, maxiter, M …).
        residual_tol: Warn (`ImplicitGradientWarning`) when ‖F(x*)‖ > residual_tol·max(1, ‖x*‖).
    """
    check_choice("jacobian", jacobian, ("func", "autograd"))
    leaves, spec = pytree.tree_flatten(args)
    diff_idx = [i for i, v in enumerate(leaves) if isinstance(v, torch.Tensor) and v.requires_grad]
    x = x_star.detach()
    shape = x.shape
    rows = shape[0] if batched else 1
    if batched and x.ndim == 0:
        raise ConfigError("batched", batched, "False for a scalar solution")

    def F_of(xv: torch.Tensor, *diff_leaves: torch.Tensor) -> torch.Tensor:
        full = list(leaves)
        for i, v in zip(diff_idx, diff_leaves):
            full[i] = v
        out = optimality_fn(xv, *pytree.tree_unflatten(full, spec), **kwargs)
        if not isinstance(out, torch.Tensor) or out.shape != shape:
            raise ConfigError("optimality_fn", f"returning {getattr(out, 'shape', type(out).__name__)}",
                              f"a tensor of the solution's shape {tuple(shape)}")
        return out

    diff_vals = [leaves[i].detach() for i in diff_idx]
    if jacobian == "func":
        F_val, vjp_x = torch.func.vjp(lambda xv: F_of(xv, *diff_vals), x)

        def matvec(U: torch.Tensor) -> torch.Tensor:
            return vjp_x(U.reshape(shape))[0].reshape(rows, -1)
    else:
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            dv = [v.clone().requires_grad_(True) for v in diff_vals]
            F_val = F_of(xg, *dv)

        def matvec(U: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(F_val, xg, U.reshape(shape), retain_graph=True)
            return g.reshape(rows, -1)

    if residual_tol is not None:
        fn = float(torch.linalg.vector_norm(F_val.detach()))
        scale = max(1.0, float(torch.linalg.vector_norm(x)))
        if fn > residual_tol * scale:
            warnings.warn(f"implicit gradient: the forward solution has ‖F(x*)‖ = {fn:.3e} > {residual_tol:g}·"
                          f"{scale:.3g}; the gradient error grows with this residual (solve the forward problem "
                          "more tightly)", ImplicitGradientWarning, stacklevel=4)
    g = cotangent.detach().reshape(rows, -1).to(x.dtype)
    u = _linear_solve(solve, matvec, g, dict(solve_kwargs or {}))
    grads: list[torch.Tensor | None] = [None] * len(leaves)
    if not diff_idx:
        return grads
    neg_u = (-u).reshape(shape)
    if jacobian == "func":
        _, vjp_theta = torch.func.vjp(lambda *dvals: F_of(x, *dvals), *diff_vals)
        out = vjp_theta(neg_u)
    else:
        out = torch.autograd.grad(F_val, dv, neg_u, allow_unused=True)
    for i, gi in zip(diff_idx, out):
        grads[i] = gi if gi is not None else torch.zeros_like(leaves[i])
    return grads


class _ImplicitRoot(torch.autograd.Function):
    """Identity on x* whose backward is the implicit-function-theorem VJP w.r.t. the argument leaves."""

    @staticmethod
    def forward(ctx, cfg: dict, x_star: torch.Tensor, *leaves: torch.Tensor) -> torch.Tensor:
        ctx.cfg = cfg
        ctx.leaf_is_tensor = [isinstance(v, torch.Tensor) for v in leaves]
        ctx.save_for_backward(x_star, *[v for v in leaves if isinstance(v, torch.Tensor)])
        ctx.others = [None if isinstance(v, torch.Tensor) else v for v in leaves]
        return x_star.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x: torch.Tensor):
        x_star, *saved = ctx.saved_tensors
        it = iter(saved)
        leaves = [next(it) if is_t else other for is_t, other in zip(ctx.leaf_is_tensor, ctx.others)]
        cfg = ctx.cfg
        needs = ctx.needs_input_grad[2:]
        # Mark the leaves that need a gradient; the others are constants of F.
        marked = [v.detach().requires_grad_(bool(need)) if isinstance(v, torch.Tensor) else v
                  for v, need in zip(leaves, needs)]
        args = pytree.tree_unflatten(marked, cfg["spec"])
        grads = root_vjp(cfg["optimality_fn"], x_star, tuple(args), cfg["kwargs"], grad_x,
                         solve=cfg["solve"], batched=cfg["batched"], jacobian=cfg["jacobian"],
                         solve_kwargs=cfg["solve_kwargs"], residual_tol=cfg["residual_tol"])
        return (None, None, *grads)


def custom_root(
    optimality_fn: Callable,
    *,
    solve: str | Callable = "gmres",
    batched: bool = False,
    has_aux: bool = False,
    jacobian: str = "func",
    solve_kwargs: dict | None = None,
    residual_tol: float | None = 1e-6,
) -> Callable[[Callable], Callable]:
    """Decorator: make ``solver(init, *args, **kwargs) -> x*`` differentiable through F(x*, *args) = 0.

    The decorated solver runs without building an autograd graph (its iterations are never
    differentiated); the returned x* carries the implicit gradient w.r.t. every tensor in
    ``args`` (tensors may sit inside tuples, lists and dicts). ``init`` gets no gradient: the
    solution does not depend on it.

    Args:
        optimality_fn: F(x, *args, **kwargs) with the solution's shape; zero at the solution. Use
            the same signature as the solver minus ``init``.
        solve: Solver of the transposed system (∂F/∂x)ᵀ u = g: ``"gmres"`` (default, any
            non-singular Jacobian), ``"bicgstab"``, ``"cg"``/``"minres"`` (only when ∂F/∂x is
            symmetric, e.g. F = ∇f), ``"dense"`` (builds the Jacobian with N products; small x), or
            a callable ``solve(matvec, rhs) -> u`` on (B, N) tensors.
        batched: x* has shape (B, ...) and row b of F depends on row b of x only; the B systems
            are then solved as a batch.
        has_aux: The solver returns ``(x*, aux)``; aux is passed through undifferentiated.
        jacobian: ``"func"`` (torch.func.vjp) or ``"autograd"`` (for F made of old-style
            ``torch.autograd.Function``s, e.g. the Warp/Taichi bridges).
        solve_kwargs: Extra arguments for the iterative solver (``rtol`` default 1e-10 in float64,
            1e-5 in float32; ``maxiter``; ``M``); it raises `NotConverged` rather than return a wrong
            gradient.
        residual_tol: Warn when ‖F(x*)‖ > residual_tol·max(1, ‖x*‖) (the gradient is then
            inexact); None disables the check.
    """
    if isinstance(solve, str):
        check_choice("solve", solve, IMPLICIT_SOLVES)
    check_choice("jacobian", jacobian, ("func", "autograd"))

    def decorator(solver: Callable) -> Callable:
        @functools.wraps(solver)
        def wrapped(init, *args, **kwargs):
            with torch.no_grad():
                out = solver(init, *args, **kwargs)
            x_star, aux = out if has_aux else (out, None)
            if not isinstance(x_star, torch.Tensor):
                raise ConfigError("solver", f"returning {type(x_star).__name__}",
                                  "a tensor (or (tensor, aux) with has_aux)")
            leaves, spec = pytree.tree_flatten(args)
            cfg = {"optimality_fn": optimality_fn, "spec": spec, "kwargs": kwargs, "solve": solve,
                   "batched": batched, "jacobian": jacobian, "solve_kwargs": solve_kwargs,
                   "residual_tol": residual_tol}
            if any(isinstance(v, torch.Tensor) and v.requires_grad for v in leaves) and torch.is_grad_enabled():
                x_star = _ImplicitRoot.apply(cfg, x_star.detach(), *leaves)
            return (x_star, aux) if has_aux else x_star

        return wrapped

    return decorator


def custom_fixed_point(fixed_point_fn: Callable, **options) -> Callable[[Callable], Callable]:
    """Decorator like `custom_root` for a solver of x = T(x, *args): F(x, θ) = T(x, θ) − x.

    Args:
        fixed_point_fn: T(x, *args, **kwargs), same shape as x.
        **options: As for `custom_root` (solve, batched, has_aux, jacobian, solve_kwargs, residual_tol).
    """

    def optimality(x, *args, **kwargs):
        return fixed_point_fn(x, *args, **kwargs) - x

    return custom_root(optimality, **options)
