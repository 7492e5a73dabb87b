"""Bad input to the fluid environments: one clear error before any simulation step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import physim.envs  # noqa: F401
import pytest
import torch
from physim.envs.fluid.env import FluidEnv

from physim.errors import ConfigError


def _fresh(**kw):
    env = gym.make("physim/GatheringEasy-v0", horizon=2, **kw)
    env.reset(seed=0)
    return env


def _untouched(env) -> bool:
    """No kernel ran: the simulator never built its Warp model and the episode did not advance."""
    u = env.unwrapped
    return u._task.sim._backend is None and u._t == 0


def test_unknown_task_and_quality():
    """Verify unknown tasks and quality presets are refused naming the value and the choices."""
    with pytest.raises(ConfigError, match=r"task='Latte' is invalid: expected one of 'LatteArt'|LatteArt"):
        FluidEnv("Latte")
    with pytest.raises(gym.error.NameNotFound):
        gym.make("physim/Latte-v0")
    with pytest.raises(ConfigError, match=r"quality='ultra' is invalid: expected one of 'cpu', 'paper'"):
        gym.make("physim/Pouring-v0", quality="ultra")
    with pytest.raises(ConfigError, match="horizon"):
        gym.make("physim/Pouring-v0", horizon=5000)
    with pytest.raises(ConfigError, match="dtype"):
        gym.make("physim/Pouring-v0", dtype="float16")


@pytest.mark.parametrize("action, match", [
    (np.zeros(3, dtype=np.float32), r"action='shape \(3,\)' is invalid: expected shape \(2,\)"),
    (np.zeros((1, 2), dtype=np.float32), r"shape \(1, 2\)"),
    (np.array([np.nan, 0.0], dtype=np.float32), "non-finite"),
    (np.array([0.0, np.inf], dtype=np.float32), "non-finite"),
    (np.array([0.0, 1.6], dtype=np.float32), r"component 1 in \[-1.5, 1.5\]"),
    ("fast", "action"),
])
def test_bad_actions_fail_before_any_step(action, match):
    """Verify wrong shapes, NaN/inf and out-of-space actions raise ConfigError and leave the episode untouched."""
    env = _fresh()
    with pytest.raises(ConfigError, match=match):
        env.step(action)
    assert _untouched(env)


def test_step_protocol_errors():
    """Verify step before reset and step after the episode ended raise gymnasium's ResetNeeded."""
    env = FluidEnv("GatheringEasy", horizon=1)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset(seed=0)
    _, _, _, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert truncated
    with pytest.raises(gym.error.ResetNeeded, match="episode ended"):
        env.step(np.zeros(2, dtype=np.float32))
    with pytest.raises(ConfigError, match="options"):
        env.reset(options={"level": 3})
    # through gym.make's wrappers too
    wrapped = gym.make("physim/GatheringEasy-v0", horizon=1)
    with pytest.raises(gym.error.ResetNeeded):
        wrapped.step(np.zeros(2, dtype=np.float32))


def test_bad_rollout_loss_inputs_fail_before_any_step():
    """Verify rollout_loss refuses wrong shapes, horizons, NaN and out-of-bounds actions before simulating."""
    env = _fresh()
    u = env.unwrapped
    for bad, match in ((torch.zeros(3, 3), r"shape \(T, 2\)"), (torch.zeros(5, 2), r"1 ≤ T ≤ 2"),
                       (torch.zeros(0, 2), r"1 ≤ T"), (torch.full((2, 2), float("nan")), "non-finite"),
                       (torch.full((2, 2), 2.0), r"\[-1.5, 1.5\]"), (torch.zeros(2, 2, dtype=torch.long), "dtype")):
        with pytest.raises(ConfigError, match=match):
            u.rollout_loss(bad)
    with pytest.raises(ConfigError, match="horizon"):
        u.rollout_loss(torch.zeros(2, 2), horizon=3)
    assert _untouched(env)


def test_render_without_mode_warns_and_returns_none():
    """Verify render() without render_mode follows gymnasium (a warning, None), and bad render modes fail."""
    env = FluidEnv("GatheringEasy", horizon=1)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None
    with pytest.raises(ConfigError, match="render_mode"):
        FluidEnv("GatheringEasy", render_mode="human")
