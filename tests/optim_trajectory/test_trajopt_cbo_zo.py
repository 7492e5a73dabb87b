"""Methods ``cbo`` and ``zo``: physim.optim's consensus and zeroth-order implementations behind `optimize`."""

from __future__ import annotations

import pytest

pytest.importorskip("physim.optim.cbo", reason="physim.optim.cbo (issue 10) is not on this branch yet")
pytest.importorskip("physim.optim.zeroth_order", reason="physim.optim.zeroth_order (issue 10) is not here yet")

from physim.optim.trajectory import from_black_box, optimize, toys


@pytest.mark.parametrize("method", ["cbo", "zo"])
@pytest.mark.parametrize("make", [toys.quadratic, toys.abs_loss], ids=["smooth", "nonsmooth"])
def test_cbo_and_zo_lower_smooth_and_nonsmooth_losses(method, make):
    """Verify that CBO and two-point ZO lower a 6-D smooth and non-smooth loss by a third within 150 calls."""
    problem, x0 = make(dim=6)
    result = optimize(problem, x0, method, budget=150, seed=0)
    assert result.cost_used <= 150
    assert result.best_loss < 0.7 * result.initial_loss
    assert result.grad_cost is None and result.n_gradient == 0


def test_cbo_reaches_the_global_basin_and_zo_works_on_a_black_box():
    """Verify CBO's global search on the two-basin problem and ZO on a loss without any gradient."""
    problem, x0 = toys.two_basin()
    assert toys.two_basin_global(problem, optimize(problem, x0, "cbo", budget=150, seed=0).best_actions)
    box = from_black_box(lambda a: float(((a - 0.3) ** 2).sum()), (4,))
    result = optimize(box, x0.new_zeros(4), "zo", budget=100, seed=1)
    assert result.best_loss < 0.3 * result.initial_loss
