"""The ``physim envs`` and ``physim play`` commands.

    physim envs                                   tasks, spaces, horizons and losses
    physim play physim/Pouring-v0 --policy random --video out.mp4

This module is imported when ``physim --help`` lists the commands, so it imports nothing
heavy at module level.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from physim.config import check_choice, check_int
from physim.errors import ConfigError

__all__ = ["EnvsConfig", "PlayConfig", "describe", "list_envs", "play", "resolve_task"]

log = logging.getLogger(__name__)

POLICIES = ("random", "zero", "demo")


def resolve_task(name: str) -> str:
    """Task name from an id (``physim/Pouring-v0``) or a name (``Pouring``); `ConfigError` if unknown."""
    from physim.envs.fluid.registry import TASKS

    task = name
    if isinstance(name, str) and name.startswith("physim/") and name.endswith("-v0"):
        task = name[len("physim/"):-len("-v0")]
    if task not in TASKS:
        raise ConfigError("env", name, "one of " + ", ".join(f"physim/{t}-v0" for t in TASKS))
    return task


def describe(task: str, quality: str = "cpu") -> dict:
    """Spaces, horizon, scene size and loss of `task` at `quality` (builds the scene, runs nothing)."""
    from physim.envs.fluid.quality import get_quality
    from physim.envs.fluid.registry import build_spec, env_id
    from physim.envs.fluid.spec import TaskSpec

    q = get_quality(quality)
    spec = build_spec(task, q)
    row = {"id": env_id(task), "task": task, "description": spec.description, "horizon": spec.horizon,
           "control_dt": spec.control_dt, "action_dim": spec.action_dim,
           "action_high": [float(v) for v in spec.action_high], "loss": spec.loss_doc}
    tool = spec.tools[0]
    row["action_names"] = [f"{tool.name}.{d}" for d in tool.dofs] + (["aircon.strength"] if task == "Circulation"
                                                                     else [])
    if isinstance(spec, TaskSpec):
        import torch
        from physim.envs.fluid.mpm_task import MPMTask

        t = MPMTask(spec, dtype=torch.float32, device=torch.device("cpu"))
        row.update(obs_dim=t.obs_dim, particles=t.sim.particle_count, grid=list(t.sim.cfg.resolution),
                   dim=spec.dim, substeps=spec.substeps)
    else:
        from physim.envs.fluid.tasks.circulation import gas_obs_dim, gas_resolution

        try:
            grid = list(gas_resolution(spec.quality))
        except ImportError:  # physim.gas not installed: the row still lists the spaces
            grid = ["?"]
        row.update(obs_dim=gas_obs_dim(), particles=0, grid=grid, dim=3, substeps=1)
    return row


@dataclass(frozen=True, kw_only=True)
class EnvsConfig:
    """List physim's environments: action and observation spaces, horizons, scene sizes and losses."""

    quality: str = "cpu"
    """Quality preset whose scene sizes are shown: cpu or paper."""
    losses: bool = False
    """Also print each task's loss."""

    def __post_init__(self) -> None:
        check_choice("quality", self.quality, ("cpu", "paper"))


def list_envs(cfg: EnvsConfig | None = None) -> list[dict]:
    """`physim envs`: print one row per task and return the rows."""
    from physim.envs.fluid.registry import TASKS

    cfg = cfg or EnvsConfig()
    rows = [describe(t, cfg.quality) for t in TASKS]
    print(f"physim fluid-manipulation environments ({cfg.quality} quality); gym.make(ID, quality='cpu'|'paper')")
    head = f"{'id':28s} {'actions (bounds)':52s} {'obs':>6s} {'horizon':>8s} {'particles':>9s}  grid"
    print(head)
    print("-" * len(head))
    for r in rows:
        acts = ", ".join(f"{n.split('.')[-1]}±{h:g}" for n, h in zip(r["action_names"], r["action_high"]))
        dur = r["horizon"] * r["control_dt"]
        print(f"{r['id']:28s} {acts:52s} {r['obs_dim']:6d} {r['horizon']:5d} ({dur:.3g} s) {r['particles']:6d}  "
              f"{'x'.join(map(str, r['grid']))}{' (2D)' if r['dim'] == 2 else ''}")
        if cfg.losses:
            print(f"    {r['description']}\n    loss per step: {r['loss']}")
    return rows


@dataclass(frozen=True, kw_only=True)
class PlayConfig:
    """Run one episode of an environment with a simple policy; optionally save a video."""

    env: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV")]
    """Environment id (physim/Pouring-v0) or task name (Pouring)."""
    policy: str = "random"
    """random (uniform in the action space, seeded), zero, or demo (the task's scripted motion)."""
    video: Path | None = None
    """Video file (.mp4 or .gif); none by default."""
    quality: str = "cpu"
    """cpu or paper."""
    seed: int = 0
    """Seed of reset and of the random policy."""
    steps: int | None = None
    """Episode length in control steps; default: the task's horizon."""
    frame_every: int | None = None
    """Film every k-th control step; default: about 200 frames per episode."""
    fps: float = 25.0
    """Frames per second of the video."""
    size: int = 256
    """Video width and height [px]."""
    progress: bool = True
    """Show a progress bar (on a terminal)."""

    def __post_init__(self) -> None:
        resolve_task(self.env)
        check_choice("policy", self.policy, POLICIES)
        check_choice("quality", self.quality, ("cpu", "paper"))
        check_int("seed", self.seed, 0)
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        if self.frame_every is not None:
            check_int("frame_every", self.frame_every, 1)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError("fps", self.fps, "a positive number of frames per second")
        check_int("size", self.size, 32, 4096)
        if self.video is not None and Path(self.video).suffix.lower() not in (".mp4", ".gif"):
            raise ConfigError("video", str(self.video), "a path ending in .mp4 or .gif")


def play(cfg: PlayConfig) -> dict:
    """`physim play`: one episode, its return, and a video if asked for."""
    import gymnasium as gym
    import numpy as np
    import physim.envs  # noqa: F401  (registers the ids)
    from physim.envs.fluid.registry import env_id

    task = resolve_task(cfg.env)
    kwargs = {"quality": cfg.quality, "render_mode": "rgb_array" if cfg.video else None, "render_size": cfg.size}
    if cfg.steps is not None:
        from physim.envs.fluid.registry import HORIZONS

        if cfg.steps > HORIZONS[task]:
            raise ConfigError("steps", cfg.steps, f"at most the horizon of {task}, {HORIZONS[task]}")
        kwargs["horizon"] = cfg.steps
    env = gym.make(env_id(task), **kwargs)
    u = env.unwrapped
    horizon = u.horizon
    every = cfg.frame_every or max(1, horizon // 200)
    env.action_space.seed(cfg.seed)
    demo = u.demo_actions() if cfg.policy == "demo" else None
    t0 = time.perf_counter()
    env.reset(seed=cfg.seed)
    frames = [env.render()] if cfg.video else []
    total, steps, final_loss, ended = 0.0, 0, math.nan, ""
    bar = _bar(horizon, cfg.progress, f"{task} ({cfg.policy})")
    try:
        for t in range(horizon):
            if cfg.policy == "random":
                a = env.action_space.sample()
            elif cfg.policy == "zero":
                a = np.zeros(env.action_space.shape, dtype=np.float32)
            else:
                a = demo[t]
            _obs, reward, terminated, truncated, info = env.step(a)
            total += float(reward)
            steps += 1
            final_loss = info.get("loss", final_loss)
            if bar is not None:
                bar.update(1)
            if cfg.video and (steps % every == 0 or terminated or truncated):
                frames.append(env.render())
            if terminated or truncated:
                ended = "diverged: " + info["diverged"] if "diverged" in info else ("terminated" if terminated
                                                                                     else "truncated")
                break
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    result = {"env": env_id(task), "policy": cfg.policy, "steps": steps, "return": total, "final_loss": final_loss,
              "seconds": seconds, "ended": ended}
    print(f"{env_id(task)} ({cfg.quality}), policy {cfg.policy}: {steps} steps, return {total:.6g}, "
          f"final step loss {final_loss:.6g}, {seconds:.1f} s ({ended})")
    if cfg.video:
        from physim.mpm.render import save_animation

        save_animation(cfg.video, frames, fps=cfg.fps)
        result["video"] = str(cfg.video)
        print(f"  {cfg.video} ({len(frames)} frames, every {every} control steps, {cfg.fps:g} fps)")
    env.close()
    return result


def _bar(total: int, enabled: bool, desc: str):
    import sys

    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step")
