"""Full episodes of every task at cpu quality (slow): scripted and random actions stay finite.

Marked slow: together they simulate a few minutes of CPU time (`make test-all`).
"""

from __future__ import annotations

import math

import gymnasium as gym
import physim.envs  # noqa: F401  (registers the ids)
import pytest
import torch
from physim.envs.fluid.registry import TASKS, env_id


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_full_episode_with_scripted_and_random_actions(task):
    """Verify a whole episode under the scripted and under uniformly random actions: finite losses, no divergence."""
    env = gym.make(env_id(task))
    u = env.unwrapped
    env.reset(seed=0)
    demo = torch.as_tensor(u.demo_actions())
    high = torch.as_tensor(env.action_space.high)
    rand = (2 * torch.rand(demo.shape, generator=torch.Generator().manual_seed(0)) - 1) * high
    with torch.no_grad():
        scripted = float(u.rollout_loss(demo))
        random = float(u.rollout_loss(rand))
    assert math.isfinite(scripted) and math.isfinite(random)
    if getattr(u._task, "needs_goal", False):
        assert scripted == 0.0 < random


@pytest.mark.slow
def test_full_horizon_gradient_with_automatic_checkpointing():
    """Verify forward+backward over LatteArt's whole horizon (250 steps) gives a finite, non-zero gradient."""
    env = gym.make("physim/LatteArt-v0")
    env.reset(seed=0)
    a = (torch.as_tensor(env.unwrapped.demo_actions()) + 1.0).requires_grad_(True)
    loss = env.unwrapped.rollout_loss(a)
    loss.backward()
    assert torch.isfinite(a.grad).all() and float(a.grad.abs().sum()) > 0
