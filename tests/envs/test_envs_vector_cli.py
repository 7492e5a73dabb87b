"""Vector environments (one process per env) and the `physim envs` / `physim play` commands."""

from __future__ import annotations

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import physim.envs  # noqa: F401
import pytest

from physim.cli import main


def _make():
    return gym.make("physim/Transporting-v0", horizon=3)


def test_async_vector_env_steps_and_autoresets():
    """Verify AsyncVectorEnv runs two envs in subprocesses, batches spaces, truncates together and autoresets."""
    envs = gym.vector.AsyncVectorEnv([_make, _make])
    try:
        obs, _ = envs.reset(seed=[1, 2])
        assert obs.shape == (2, *envs.single_observation_space.shape) and obs.dtype == np.float32
        envs.action_space.seed(0)
        for _t in range(3):
            obs, rew, term, trunc, _info = envs.step(envs.action_space.sample())
            assert rew.shape == (2,) and np.isfinite(rew).all()
        assert trunc.all() and not term.any()
        obs2, rew2, _, trunc2, _ = envs.step(envs.action_space.sample())  # NEXT_STEP autoreset: a fresh episode
        assert not trunc2.any() and (rew2 == 0).all()
        first, _ = envs.reset(seed=[1, 2])
        np.testing.assert_array_equal(first, obs2)  # the deterministic scene restarts where reset starts
    finally:
        envs.close()


def test_physim_envs_lists_every_task(capsys):
    """Verify `physim envs` prints one row per id with its action bounds and horizon."""
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for name in ("physim/LatteArt-v0", "physim/GatheringO-v0", "physim/Circulation-v0"):
        assert name in out
    assert "3600 (7.2 s)" in out and "wz±10" in out


def test_physim_play_writes_a_video(tmp_path, capsys):
    """Verify `physim play` runs an episode with the random policy and writes an MP4 of it."""
    video = tmp_path / "out.mp4"
    assert main(["play", "physim/Pouring-v0", "--policy", "random", "--steps", "4", "--video", str(video),
                 "--size", "64", "--frame-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 steps, return" in out and str(video) in out
    frames = iio.imread(video, plugin="pyav")
    assert frames.shape[0] == 5 and frames.shape[1:] == (64, 64, 3)


@pytest.mark.parametrize("args, message", [
    (["play", "physim/Nope-v0"], "env='physim/Nope-v0' is invalid"),
    (["play", "Pouring", "--policy", "smart"], "policy='smart' is invalid"),
    (["play", "Pouring", "--video", "x.avi"], "a path ending in .mp4 or .gif"),
    (["play", "Pouring", "--quality", "ultra"], "quality='ultra' is invalid"),
    (["envs", "--quality", "ultra"], "quality='ultra' is invalid"),
])
def test_cli_bad_input_is_one_line(args, message, capsys):
    """Verify bad command-line values exit with status 2 and one line naming the value."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
