"""Trajectory optimisation on the Warp mass-spring chain tasks (a real differentiable simulator)."""

from __future__ import annotations

import pytest
import torch

from physim.optim.trajectory import GradientConfig, optimize
from physim.optim.trajectory.chain_tasks import ChainTask, ChainTaskConfig
from physim.testing import assert_grad_matches_fd


@pytest.fixture(scope="module")
def track():
    return ChainTask(ChainTaskConfig(task="track", particles=5, steps=15))


@pytest.mark.parametrize("task", ["track", "swingup", "throw"])
def test_chain_task_gradient_matches_finite_differences(task):
    """Verify the task loss's gradient with respect to the tool velocities against central differences (float64)."""
    ct = ChainTask(ChainTaskConfig(task=task, particles=4, steps=6))
    gen = torch.Generator().manual_seed(1)
    actions = 0.3 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    assert_grad_matches_fd(lambda a: ct.problem._fn(a), [actions], eps=1e-6, rtol=1e-4, atol=1e-9)


def test_truncated_horizon_is_a_partial_sum_of_the_full_loss(track):
    """Verify that the loss over the first H steps equals the per-step sum of the full rollout up to H."""
    a = 0.2 * torch.ones(15, 2, dtype=torch.float64)
    end, tool = track._rollout(a)
    per_step = ((end - track.goal) ** 2).sum(-1)
    for h in (3, 15):
        got = track.problem.loss(a, horizon=h if h < 15 else None)
        expected = float(per_step[:h].mean() + track._penalties(a, tool, h))
        assert got == pytest.approx(expected, rel=1e-12)


def test_tool_path_and_actions_are_inverse(track):
    """Verify that actions → tool positions at the knots → actions is the identity."""
    a = torch.randn(15, 2, dtype=torch.float64)
    times, pos = track.tool_path(a)
    assert times.shape == (16,) and pos.shape == (16, 2) and float(pos[0].abs().max()) == 0.0
    assert torch.allclose(track.actions_from_tool(pos), a, atol=1e-12)


def test_gradient_and_hybrid_lower_the_chain_tracking_loss(track):
    """Verify that the gradient (with the expanding horizon) and hybrid methods lower the chain's tracking loss."""
    x0 = track.init_actions
    g = optimize(track.problem, x0, "gradient", budget=16, grad_cost=2.5, config=GradientConfig(lr=0.05))
    assert g.best_loss < 0.5 * g.initial_loss
    assert g.info["horizon_schedule"][-1]["horizon"] == 15
    h = optimize(track.problem, x0, "hybrid", budget=24, seed=0, grad_cost=2.5)
    assert h.best_loss < 0.5 * h.initial_loss
