"""``physim sim SCENE.yaml``: run a scene file, write an HDF5 trajectory and an optional video.

    physim sim assets/scenes/dam_break.yaml --steps 100 --out out/dam_break.h5 --video out/dam_break.gif

The run writes ``<out>.partial`` and saves its state every ``--checkpoint-every`` steps;
running the same command again after an interruption continues from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

__all__ = ["SimConfig", "run_sim"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Run an MPM scene file and record its trajectory."""

    scene: Annotated[Path, tyro.conf.Positional]
    """Scene file (YAML), e.g. assets/scenes/dam_break.yaml."""
    steps: int | None = None
    """Control steps to simulate (default: the scene's `steps`)."""
    out: Path = Path("out/traj.h5")
    """HDF5 trajectory to write."""
    video: Path | None = None
    """Optional animation (.gif or .mp4) or last frame (.png), colored by material."""
    every: int = 1
    """Record every n-th step."""
    checkpoint_every: int = 50
    """Save a resumable state every n steps."""
    fresh: bool = False
    """Ignore an interrupted run's partial file and start over."""

    def __post_init__(self) -> None:
        from physim.config import check_int

        if self.steps is not None:
            check_int("steps", self.steps, 1)
        check_int("every", self.every, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        if self.video is not None and self.video.suffix.lower() not in (".gif", ".mp4", ".png"):
            from physim.errors import ConfigError

            raise ConfigError("video", str(self.video), "a path ending in .gif, .mp4 or .png")


def run_sim(cfg: SimConfig) -> Path:
    """Simulate, record and (optionally) render; returns the trajectory path."""
    import torch
    from tqdm import tqdm

    from physim.mpm.recording import TrajectoryWriter
    from physim.mpm.scene import load_scene

    scene = load_scene(cfg.scene)
    steps = cfg.steps or scene.steps
    sim = scene.simulator()
    actions = scene.action_sequence(sim, steps)
    partial = cfg.out.with_name(cfg.out.name + ".partial")
    if cfg.fresh and partial.exists():
        partial.unlink()
    writer = TrajectoryWriter(cfg.out, sim, seed=scene.seed, resume=partial.exists())
    state = sim.reset(seed=scene.seed)
    start = 0
    resumed = writer.load_resume(state) if writer.frames else None
    if resumed is not None:
        state, start = resumed
        log.info("resuming %s from step %d", partial, start)
    elif writer.frames == 0:
        writer.append(state)
    else:  # a partial file without a saved state: start over
        writer.f.close()
        partial.unlink()
        writer = TrajectoryWriter(cfg.out, sim, seed=scene.seed)
        writer.append(state)
    frames = []
    render_every = int(scene.render.get("every", 1))

    def snap(s):
        if cfg.video is not None:
            frames.append(s.x.detach().cpu().numpy().copy())

    snap(state)
    with torch.no_grad():
        for t in tqdm(range(start, steps), desc=f"sim {cfg.scene.name}", unit="step", initial=start, total=steps,
                      disable=None):
            state = sim.step(state, None if actions is None else actions[t])
            if (t + 1) % cfg.every == 0:
                writer.append(state)
            if (t + 1) % cfg.checkpoint_every == 0:
                writer.save_resume(state, writer.frames - 1)
            if (t + 1) % render_every == 0:
                snap(state)
    path = writer.close()
    log.info("wrote %s (%d frames, %d particles)", path, steps // cfg.every + 1, sim.particle_count)
    if cfg.video is not None:
        from physim.mpm.render import render_frame, save_animation

        mid = sim.material_id.cpu().numpy()
        size = int(scene.render.get("size", 480))
        images = [render_frame(x, mid, sim.cfg.domain, names=sim.body_names, size=size,
                               title=f"{cfg.scene.stem}  t = {(i * render_every) * sim.cfg.control_dt:.3f} s")
                  for i, x in enumerate(tqdm(frames, desc="render", unit="frame", disable=None))]
        save_animation(cfg.video, images, fps=float(scene.render.get("fps", 20)))
        log.info("wrote %s", cfg.video)
    return path
