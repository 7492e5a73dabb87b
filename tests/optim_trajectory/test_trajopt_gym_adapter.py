"""The gymnasium adapter of `physim trajopt`: any registered env with `rollout_loss` becomes a task."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch

from physim.optim.trajectory import optimize
from physim.optim.trajectory.tasks import list_tasks, make_task

ENV_ID = "physim/TestPointMass-v0"


class PointMass(gym.Env):
    """A 1-D point moved by velocity actions for 10 steps of 0.1 s; the loss is (x_T − 0.5)²."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), dtype=np.float32)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.x += 0.1 * float(action[0])
        return np.array([self.x], dtype=np.float32), -abs(self.x - 0.5), False, False, {}

    def render(self):
        img = np.zeros((8, 8, 3), dtype=np.uint8)
        img[:, int(np.clip(self.x * 7, 0, 7))] = 255
        return img

    def rollout_loss(self, actions: torch.Tensor) -> torch.Tensor:
        return (0.1 * actions[:, 0].sum() - 0.5) ** 2


def test_a_registered_env_with_rollout_loss_is_optimised_and_rendered():
    """Verify that a gym env exposing rollout_loss becomes a task: bounds from its space, a video from render()."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=PointMass, max_episode_steps=10)
    assert ENV_ID in list_tasks()
    task = make_task(ENV_ID)
    assert task.problem.action_shape == (10, 1)
    assert float(task.problem.upper.max()) == 1.0 and float(task.problem.lower.min()) == -1.0
    result = optimize(task.problem, task.init_actions, "hybrid", budget=40, seed=0, grad_cost=2.0)
    assert result.best_loss < 1e-3 < result.initial_loss
    frames = task.frames(result.best_actions)
    assert len(frames) == 11 and frames[0].shape == (8, 8, 3)
    assert task.tool_path is None  # not exportable: this env declares no tool path
