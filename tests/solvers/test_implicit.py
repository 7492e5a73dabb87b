"""Verify implicit differentiation (custom_root, custom_fixed_point) and the batched Levenberg–Marquardt."""

from __future__ import annotations

import warnings

import pytest
import torch
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

from physim import solvers
from physim.errors import ConfigError
from physim.solvers.implicit import ImplicitGradientWarning
from physim.testing import assert_grad_matches_fd

DT = torch.float64



def _ridge_data():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 8, generator=gen, dtype=DT)
    y = torch.randn(60, generator=gen, dtype=DT)
    Xv = torch.randn(30, 8, generator=gen, dtype=DT)
    yv = torch.randn(30, generator=gen, dtype=DT)
    return X, y, Xv, yv


def ridge_optimality(w, lam, X, y):
    return X.T @ (X @ w - y) + lam * w


@pytest.mark.parametrize("solve", ["cg", "gmres", "bicgstab", "minres", "dense"])
@pytest.mark.parametrize("jacobian", ["func", "autograd"])
def test_ridge_hypergradient_equals_closed_form(solve, jacobian):
    """Verify d(validation loss)/dλ through an iterative ridge solver equals the closed form to 1e-8."""
    X, y, Xv, yv = _ridge_data()
    d = X.shape[1]

    @solvers.custom_root(ridge_optimality, solve=solve, jacobian=jacobian)
    def ridge(w0, lam, X, y):
        return solvers.cg(X.T @ X + lam * torch.eye(d, dtype=DT), X.T @ y, x0=w0, rtol=1e-14).x

    lam = torch.tensor(0.3, dtype=DT, requires_grad=True)
    w = ridge(torch.zeros(d, dtype=DT), lam, X, y)
    loss = 0.5 * ((Xv @ w - yv) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, lam)
    # Closed form: w(λ) = (XᵀX + λI)⁻¹ Xᵀy, dw/dλ = −(XᵀX + λI)⁻¹ w.
    H = X.T @ X + lam.detach() * torch.eye(d, dtype=DT)
    w_exact = torch.linalg.solve(H, X.T @ y)
    expected = (Xv.T @ (Xv @ w_exact - yv)) @ (-torch.linalg.solve(H, w_exact))
    assert abs(float(grad) - float(expected)) <= 1e-8 * max(1.0, abs(float(expected)))
    assert torch.allclose(w.detach(), w_exact, atol=1e-10)


def test_ridge_gradient_wrt_data_matches_fd():
    """Verify gradients w.r.t. every tensor argument (λ, X, y) match finite differences."""
    X, y, _, _ = _ridge_data()
    d = X.shape[1]

    @solvers.custom_root(ridge_optimality, solve="gmres")
    def ridge(w0, lam, X, y):
        return torch.linalg.solve(X.T @ X + lam * torch.eye(d, dtype=DT), X.T @ y)

    def f(lam, X, y):
        return ridge(torch.zeros(d, dtype=DT), lam, X, y)

    assert_grad_matches_fd(f, [torch.tensor(0.5, dtype=DT), X[:20], y[:20]])


def test_fixed_point_of_contraction_matches_fd():
    """Verify the gradient of the fixed point of a batched contraction x = tanh(W x + U θ) matches FD."""
    gen = torch.Generator().manual_seed(3)
    n = 10
    W = torch.randn(n, n, generator=gen, dtype=DT)
    W = 0.6 * W / torch.linalg.matrix_norm(W, 2)
    U = torch.randn(n, 4, generator=gen, dtype=DT)
    theta = torch.randn(5, 4, generator=gen, dtype=DT)

    def T(x, W, theta):
        return torch.tanh(x @ W.T + theta @ U.T)

    @solvers.custom_fixed_point(T, batched=True, solve="gmres")
    def fixed_point(x0, W, theta):
        x = x0
        for _ in range(300):
            x = T(x, W, theta)
        return x

    def f(W, theta):
        return fixed_point(torch.zeros(5, n, dtype=DT), W, theta)

    x = f(W, theta)
    assert torch.allclose(x, T(x, W, theta), atol=1e-13)
    assert_grad_matches_fd(f, [W, theta])


def test_pytree_args_has_aux_and_no_grad_passthrough():
    """Verify dict arguments get gradients, aux passes through, and without grad nothing is attached."""
    X, y, _, _ = _ridge_data()
    d = X.shape[1]

    def F(w, p):
        return p["X"].T @ (p["X"] @ w - p["y"]) + p["lam"] * w

    @solvers.custom_root(F, solve="cg", has_aux=True)
    def ridge(w0, p):
        sol = torch.linalg.solve(p["X"].T @ p["X"] + p["lam"] * torch.eye(d, dtype=DT), p["X"].T @ p["y"])
        return sol, {"note": "aux"}

    lam = torch.tensor(0.2, dtype=DT, requires_grad=True)
    w, aux = ridge(torch.zeros(d, dtype=DT), {"X": X, "y": y, "lam": lam})
    assert aux == {"note": "aux"} and w.requires_grad
    w.sum().backward()
    assert lam.grad is not None and torch.isfinite(lam.grad)
    w2, _ = ridge(torch.zeros(d, dtype=DT), {"X": X, "y": y, "lam": torch.tensor(0.2, dtype=DT)})
    assert not w2.requires_grad


def test_inexact_forward_solution_warns():
    """Verify a forward solution that violates its optimality condition triggers ImplicitGradientWarning."""
    X, y, _, _ = _ridge_data()

    @solvers.custom_root(ridge_optimality)
    def sloppy(w0, lam, X, y):
        return torch.zeros(X.shape[1], dtype=DT)  # not a root

    lam = torch.tensor(0.3, dtype=DT, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sloppy(None, lam, X, y).sum().backward()
    assert any(issubclass(c.category, ImplicitGradientWarning) for c in caught)


def test_bad_options_are_refused():
    """Verify an unknown backward solver and a wrongly shaped optimality function raise ConfigError."""
    with pytest.raises(ConfigError, match=r"^solve="):
        solvers.custom_root(ridge_optimality, solve="normal_cg")

    @solvers.custom_root(lambda w, lam: w[:-1] * lam)
    def bad(w0, lam):
        return torch.ones(3, dtype=DT)

    lam = torch.tensor(1.0, dtype=DT, requires_grad=True)
    with pytest.raises(ConfigError, match=r"^optimality_fn="):
        bad(None, lam).sum().backward()


def _nlls_problem(batch=3, m=14, p=4):
    gen = torch.Generator().manual_seed(1)
    basis = torch.randn(batch, m, p, generator=gen, dtype=DT)
    w_true = 0.5 * torch.randn(batch, p, generator=gen, dtype=DT)
    target = torch.tanh(torch.einsum("bmp,bp->bm", basis, w_true)) + 0.05 * torch.randn(batch, m, generator=gen,
                                                                                          dtype=DT)
    return basis, target


def residual(w, basis, target):
    return torch.tanh(torch.einsum("bmp,bp->bm", basis, w)) - target


def test_levenberg_marquardt_solves_batched_nlls():
    """Verify batched LM reaches a stationary point of each problem, with a termination reason per system."""
    basis, target = _nlls_problem()
    res = solvers.levenberg_marquardt(residual, torch.zeros(3, 4, dtype=DT), basis, target)
    assert bool(res.converged.all()) and set(res.reason) <= {"gtol", "xtol", "ftol"}
    assert float(res.gradient_norm.max()) <= 1e-8
    # Non-zero residual (noisy target): a least-squares fit, not an interpolation.
    assert float(res.cost.min()) > 1e-4


@pytest.mark.parametrize(("jacobian", "solve"), [
    ("forward", "dense"),
    pytest.param("forward", "gmres", marks=pytest.mark.slow),
    pytest.param("reverse", "minres", marks=pytest.mark.slow),
])
def test_levenberg_marquardt_gradient_matches_fd(jacobian, solve):
    """Verify the implicit gradient of the NLLS solution w.r.t. basis and target matches finite differences."""
    basis, target = _nlls_problem(batch=2)

    def f(basis, target):
        return solvers.levenberg_marquardt(residual, torch.zeros(2, 4, dtype=DT), basis, target, jacobian=jacobian,
                                           implicit_solve=solve).x

    assert_grad_matches_fd(f, [basis, target], n_directions=2)


def test_levenberg_marquardt_unbatched_and_flags_failure():
    """Verify an unbatched problem solves, and max_iter without meeting a test is flagged and raises on request."""
    def r(w, a):
        return torch.stack([w[0] ** 2 + w[1] - a[0], w[0] - w[1] ** 3 - a[1], w[0] * w[1] - a[2]])

    a = torch.tensor([1.0, 0.5, 0.3], dtype=DT)
    res = solvers.levenberg_marquardt(r, torch.ones(2, dtype=DT), a)
    assert res.x.shape == (2,) and bool(res.converged)
    assert_grad_matches_fd(lambda a: solvers.levenberg_marquardt(r, torch.ones(2, dtype=DT), a).x, [a])
    short = solvers.levenberg_marquardt(r, torch.ones(2, dtype=DT) * 5, a, max_iter=1, implicit=False)
    assert not bool(short.converged) and short.reason == ["max_iter"]
    with pytest.raises(solvers.NotConverged):
        solvers.levenberg_marquardt(r, torch.ones(2, dtype=DT) * 5, a, max_iter=1, raise_on_fail=True)
    with pytest.raises(ConfigError, match=r"^x0="):
        solvers.levenberg_marquardt(r, torch.tensor([float("nan"), 1.0], dtype=DT), a)
