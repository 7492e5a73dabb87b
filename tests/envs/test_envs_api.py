"""The gymnasium face of the fluid suite: registration, check_env per id, spaces, determinism, rewards."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import physim.envs
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from physim.envs.fluid.registry import HORIZONS, TASKS, env_id

IDS = [env_id(t) for t in TASKS]
# check_env's advice that does not apply: actions are tool velocities in SI units, observations unbounded.
EXPECTED = ("symmetric and normalized space", "minimum value is -infinity", "maximum value is infinity")


def test_every_task_is_registered_with_its_horizon():
    """Verify that importing physim.envs registers physim/<Task>-v0 for FluidLab's twelve tasks."""
    assert set(physim.envs.ids()) == {env_id(t) for t in TASKS}
    assert len(TASKS) == 12
    for task, horizon in HORIZONS.items():
        spec = gym.spec(env_id(task))
        assert spec.max_episode_steps == horizon
        assert spec.kwargs == {"task": task}


@pytest.mark.parametrize("env_name", IDS)
def test_check_env(env_name):
    """Verify that gymnasium's check_env passes for every id (cpu quality, 3-step horizon)."""
    env = gym.make(env_name, horizon=3, render_mode="rgb_array", render_size=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    unexpected = [str(w.message) for w in caught if not any(e in str(w.message) for e in EXPECTED)]
    assert not unexpected, unexpected
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def _episode(env, seed: int, steps: int):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    rewards = []
    for _ in range(steps):
        obs, r, _term, _trunc, _info = env.step(env.action_space.sample())
        out.append(obs)
        rewards.append(r)
    return np.stack(out), np.array(rewards)


def test_same_seed_same_episode_and_truncation():
    """Verify that equal seeds give equal episodes (bitwise on CPU) and that the horizon truncates."""
    env = gym.make("physim/Pouring-v0", horizon=4)
    o1, r1 = _episode(env, 3, 4)
    o2, r2 = _episode(env, 3, 4)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    env.reset(seed=0)
    for t in range(4):
        _, _, term, trunc, info = env.step(np.zeros(3, dtype=np.float32))
        assert not term and trunc == (t == 3) and info["step"] == t + 1


def test_rewards_sum_to_minus_rollout_loss():
    """Verify that the gym rewards of an episode add up to −rollout_loss of its actions (LatteArt, a jet task)."""
    for task, H in (("LatteArt", 5), ("Transporting", 4)):
        env = gym.make(env_id(task), horizon=H)
        env.reset(seed=0)
        gen = torch.Generator().manual_seed(0)
        high = torch.as_tensor(env.action_space.high)
        actions = (2 * torch.rand(H, high.numel(), generator=gen) - 1) * high
        total = sum(env.step(a.numpy())[1] for a in actions)
        loss = env.unwrapped.rollout_loss(actions)
        assert loss.dtype == torch.float32 and loss.dim() == 0
        np.testing.assert_allclose(total, -float(loss), rtol=1e-5, atol=1e-7)


def test_goal_tasks_score_zero_on_their_scripted_demo():
    """Verify that a shape-matching task's loss vanishes on the demo that recorded its goal, and not elsewhere."""
    env = gym.make("physim/IceCreamDynamic-v0", horizon=6)
    env.reset(seed=0)
    demo = torch.as_tensor(env.unwrapped.demo_actions())
    assert float(env.unwrapped.rollout_loss(demo)) == 0.0
    other = demo.clone()
    other[:, 0] += 0.5
    # nothing is emitted before the stream reaches the cone: the first steps only move the cone
    assert float(env.unwrapped.rollout_loss(other)) >= 0.0
    env = gym.make("physim/LatteArt-v0", horizon=6)
    env.reset(seed=0)
    demo = torch.as_tensor(env.unwrapped.demo_actions())
    assert float(env.unwrapped.rollout_loss(demo)) == 0.0
    assert float(env.unwrapped.rollout_loss(demo + 1.0)) > 0.0


def test_goal_cache_key_follows_the_engine_code(monkeypatch):
    """Verify that a goal recorded by other MPM or task code is never reused (its key changes with the code)."""
    from physim.envs.fluid import goals

    env = gym.make("physim/LatteArt-v0", horizon=4).unwrapped
    key = goals.goal_key(env._task)
    assert goals.goal_key(env._task) == key
    monkeypatch.setattr(goals, "source_digest", lambda *packages: "another engine")
    assert goals.goal_key(env._task) != key


def test_quality_presets_differ_only_in_resolution():
    """Verify that gym.make(..., quality=) picks the preset: same spaces' bounds and horizon, 8x the particles."""
    cpu = gym.make("physim/Pouring-v0", quality="cpu").unwrapped
    paper = gym.make("physim/Pouring-v0", quality="paper").unwrapped
    assert cpu.quality == "cpu" and paper.quality == "paper"
    assert cpu.horizon == paper.horizon == HORIZONS["Pouring"]
    np.testing.assert_array_equal(cpu.action_space.high, paper.action_space.high)
    n_cpu, n_paper = cpu._task.sim.particle_count, paper._task.sim.particle_count
    assert 7.0 < n_paper / n_cpu < 9.0
    assert paper._task.spec.substeps == 10 and paper._task.spec.dt == 2e-4  # FluidLab's time stepping
