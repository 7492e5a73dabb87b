"""The functional face: rollout_loss is differentiable w.r.t. the actions and matches finite differences.

Float64 scenes over a few control steps, random action sequences near the scripted demo,
central differences along random directions (physim.testing.assert_grad_matches_fd).

Note on colliders: physim.mpm projects grid nodes inside a collider hard (no soft contact),
so a loss through a moving collider is piecewise smooth with jumps of ~1e-9 where a node
crosses a collider surface; turning a large collider (Pouring's glass) crosses many, and
finite differences at ε = 1e-6 then see the jumps. The collider task checked here moves a
stirrer by translation, where central differences agree with autograd to 1e-8 relative for
every ε from 1e-3 to 1e-7.
"""

from __future__ import annotations

import gymnasium as gym
import physim.envs  # noqa: F401  (registers the ids)
import pytest
import torch

from physim.testing import assert_grad_matches_fd


def _actions(env, scale: float, seed: int = 0) -> torch.Tensor:
    u = env.unwrapped
    demo = torch.as_tensor(u.demo_actions(), dtype=torch.float64)
    high = torch.as_tensor(env.action_space.high, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    a = demo + scale * high * torch.randn(demo.shape, generator=gen, dtype=torch.float64)
    return torch.maximum(torch.minimum(a, 0.9 * high), -0.9 * high)


@pytest.mark.parametrize("task, horizon, scale", [
    ("LatteArt", 6, 0.05),        # an emitter on a moving pitcher: the jet's release points move with the actions
    ("LatteArtStir", 4, 0.3),     # a stirrer collider dragging viscous milk and coffee
])
def test_mpm_rollout_loss_matches_finite_differences(task, horizon, scale):
    """Verify d rollout_loss / d actions against central differences (float64, few steps)."""
    env = gym.make(f"physim/{task}-v0", horizon=horizon, dtype="float64")
    env.reset(seed=0)
    a = _actions(env, scale)
    u = env.unwrapped
    reports = assert_grad_matches_fd(u.rollout_loss, [a], eps=1e-6, rtol=1e-4, n_directions=3)
    assert any(abs(r.autograd) > 1e-12 for r in reports), "the loss does not depend on the actions"


def test_circulation_rollout_loss_matches_finite_differences():
    """Verify the gas task's gradient (aircon motion, yaw and strength through the Taichi grid) against FD."""
    env = gym.make("physim/Circulation-v0", horizon=4, dtype="float64")
    env.reset(seed=0)
    a = _actions(env, 0.1)
    reports = assert_grad_matches_fd(env.unwrapped.rollout_loss, [a], eps=1e-6, rtol=1e-4, n_directions=3)
    assert any(abs(r.autograd) > 1e-8 for r in reports)


def test_checkpointing_does_not_change_the_gradient():
    """Verify that rollout_loss gives the same value and gradient stored whole, checkpointed every 2 steps,
    with the automatic plan under a small memory budget (checkpoints, no kept tail), and with checkpoints
    beside a tail whose graph the forward pass keeps (`keep_last`)."""
    grads = []
    for k in (None, 2, "auto", "tail"):
        kw = {"checkpoint_every": "auto" if k == "tail" else k}
        if k == "auto":
            probe = gym.make("physim/LatteArtStir-v0", horizon=5, dtype="float64").unwrapped
            state_bytes, step_bytes = probe._task.memory_estimate()
            kw["memory_budget"] = 2 * step_bytes + 2 * state_bytes  # room for two steps' graph beside checkpoints
        env = gym.make("physim/LatteArtStir-v0", horizon=5, dtype="float64", **kw)
        if k == "auto":
            plan = env.unwrapped._checkpoint_plan(5)
            assert plan[0] is not None and plan[1] == 0, plan
        elif k == "tail":  # the plan the automatic one used to choose: K = 2 and the last 2 steps kept
            env.unwrapped._checkpoint_plan = lambda T: (2, 2)
        env.reset(seed=0)
        a = _actions(env, 0.3).requires_grad_(True)
        loss = env.unwrapped.rollout_loss(a)
        loss.backward()
        grads.append((float(loss.detach()), a.grad.clone()))
    for other in grads[1:]:
        assert grads[0][0] == pytest.approx(other[0], rel=1e-12)
        torch.testing.assert_close(grads[0][1], other[1], rtol=1e-9, atol=1e-14)


def test_loss_horizon_and_dtype_of_gradients():
    """Verify rollout_loss(horizon=H) sums the first H steps and returns gradients in the actions' dtype."""
    env = gym.make("physim/LatteArt-v0", horizon=6)
    env.reset(seed=0)
    a = _actions(env, 0.05).requires_grad_(True)  # float64 actions into a float32 env
    full = env.unwrapped.rollout_loss(a)
    part = env.unwrapped.rollout_loss(a, horizon=4)
    assert float(part.detach()) <= float(full.detach())
    assert float(part.detach()) == pytest.approx(float(env.unwrapped.rollout_loss(a[:4].detach())), rel=1e-6)
    part.backward()
    assert a.grad.dtype == torch.float64 and bool(a.grad[4:].eq(0).all()) and float(a.grad[:4].abs().sum()) > 0
