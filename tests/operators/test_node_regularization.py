"""Verify the neural ODE module: solver heuristics against the solver and closed forms, gradients, adjoints."""

from __future__ import annotations

import itertools

import pytest
import torch
from physim.operators import load
from physim.operators.node import NeuralODE, spiral_data, step_heuristics

from physim.errors import ConfigError
from physim.testing import assert_grad_matches_fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**kw) -> NeuralODE:
    torch.manual_seed(0)
    return NeuralODE(dim=2, hidden=16, cubic=True, **kw).double()


def test_recomputed_steps_reproduce_the_solver():
    """Verify each recorded accepted step, recomputed, lands on the next step's start and passed the error test."""
    t, y = spiral_data(100, 5.0)
    model = _model(rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        model(y[:1], t)
    steps = model.func.accepted
    assert len(steps) > 5 and model.last_nfe >= 6 * len(steps)
    for (t0, y0, dt), (t1, y1, _) in itertools.pairwise(steps):
        h = step_heuristics(model.func, t0, y0, dt, rtol=model.rtol, atol=model.atol)
        torch.testing.assert_close(h.y1, y1, rtol=0, atol=1e-13)
        torch.testing.assert_close(t0 + dt, t1)
        assert float(h.error_ratio.detach()) <= 1.0


def test_stiffness_estimate_closed_form():
    """Verify ρ = |λ| for y' = λy, and |λ_min| ≤ ρ ≤ |λ_max| for a diagonal linear system."""
    y0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    h = step_heuristics(lambda t, y: -37.0 * y, 0.0, y0, 0.01, rtol=1e-3, atol=1e-6)
    assert float(h.stiffness) == pytest.approx(37.0, rel=1e-10)
    A = torch.tensor([-1.0, -100.0], dtype=torch.float64)
    h = step_heuristics(lambda t, y: A * y, 0.0, y0, 0.01, rtol=1e-3, atol=1e-6)
    assert 1.0 <= float(h.stiffness) <= 100.0


def test_local_error_estimate_is_fifth_order():
    """Verify the embedded error of y' = −y shrinks 2⁵ = 32× when the step halves, and y1 ≈ e^{−h}."""
    y0 = torch.tensor([1.0], dtype=torch.float64)
    f = lambda t, y: -y  # noqa: E731
    e = [float(step_heuristics(f, 0.0, y0, h, rtol=0.0, atol=1.0).error.abs()) for h in (0.2, 0.1)]
    assert e[0] / e[1] == pytest.approx(32.0, rel=0.1)
    y1 = step_heuristics(f, 0.0, y0, 0.1, rtol=0.0, atol=1.0).y1
    assert float(y1) == pytest.approx(float(torch.exp(torch.tensor(-0.1, dtype=torch.float64))), abs=1e-8)


def test_heuristic_gradients_match_finite_differences():
    """Verify ∂E/∂θ and ∂ρ/∂θ of a tanh-MLP dynamics against central differences (float64)."""
    gen = torch.Generator().manual_seed(0)
    W1 = torch.randn(8, 2, dtype=torch.float64, generator=gen)
    b1 = torch.randn(8, dtype=torch.float64, generator=gen)
    W2 = torch.randn(2, 8, dtype=torch.float64, generator=gen) * 0.5
    y0 = torch.tensor([[0.7, -0.3], [0.1, 0.4]], dtype=torch.float64)

    def heuristics(W1, b1, W2):
        f = lambda t, y: torch.tanh(y @ W1.T + b1) @ W2.T  # noqa: E731
        h = step_heuristics(f, 0.0, y0, 0.3, rtol=1e-3, atol=1e-6)
        return h.error_ratio, h.stiffness

    assert_grad_matches_fd(heuristics, [W1, b1, W2], eps=1e-6, rtol=1e-5)


def test_regularisation_works_with_the_adjoint_and_reduces_solver_work():
    """Verify adjoint and direct solves give the same penalties and gradients, and that minimising the
    penalties makes the solve cheaper (fewer function evaluations)."""
    t, y = spiral_data(20, 2.0)
    y0 = y[:1]
    values, reg_grads, data_grads = [], [], []
    for adjoint in (False, True):
        model = _model(adjoint=adjoint, rtol=1e-7, atol=1e-9)
        ys = model(y0, t)
        reg = model.regularization(n_samples=3, generator=torch.Generator().manual_seed(0))
        params = list(model.parameters())
        reg_grads.append(torch.autograd.grad(reg.error + 0.01 * reg.stiffness, params))
        data_grads.append(torch.autograd.grad(((ys[:, 0] - y) ** 2).mean(), params))
        values.append((float(reg.error), float(reg.stiffness)))
    # The penalties are recomputed from recorded steps: identical whatever the adjoint.
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    for a, b in zip(*reg_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    # The data term: the continuous adjoint agrees with backpropagation through the solver at tight tolerances.
    for a, b in zip(*data_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)

    torch.manual_seed(0)
    model = NeuralODE(dim=2, hidden=16).double()
    for layer in (model.func.net[0], model.func.net[2]):  # a deliberately stiff, expensive start
        torch.nn.init.normal_(layer.weight, std=3.0)
    with torch.no_grad():
        model(y0, t)
    nfe_before = model.last_nfe
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        opt.zero_grad()
        model(y0, t)
        reg = model.regularization(n_samples=2, generator=gen)
        (reg.error + 0.01 * reg.stiffness).backward()
        opt.step()
    with torch.no_grad():
        model.eval()
        model(y0, t)
    assert model.last_nfe < 0.5 * nfe_before, (nfe_before, model.last_nfe)


def test_save_load_and_bad_input(tmp_path):
    """Verify the operator round-trips through save/load and that bad inputs are named."""
    model = _model()
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    model.save(tmp_path / "node.pt")
    again = load(tmp_path / "node.pt").double()
    torch.testing.assert_close(again(y0, t), model(y0, t))
    with pytest.raises(ConfigError, match=r"^y0="):
        model(torch.zeros(1, 3, dtype=torch.float64), t)
    with pytest.raises(ConfigError, match=r"^t="):
        model(y0, t.flip(0))
    with pytest.raises(ConfigError, match=r"^rtol="):
        NeuralODE(rtol=0.0)
    with pytest.raises(ConfigError, match=r"^method="):
        NeuralODE(method="rk4")
    with pytest.raises(ConfigError, match=r"^n_samples=0"):
        model.regularization(n_samples=0)
    fresh = _model()
    with pytest.raises(RuntimeError, match="no recorded solver step"):
        fresh.regularization()
