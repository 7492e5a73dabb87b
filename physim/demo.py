"""The `physim demo` job: fit a Warp mass-spring chain so its free end hits a target.

The unknowns are the spring stiffness [N/m] and the chain's initial velocities
[m/s]; the loss is the squared distance [m²] between the end particle and the target
after the last control step. Gradients come from Warp's tape through physim's bridge,
the optimizer is torch's Adam, and the results are a loss curve (PNG), an animation
of the first and the optimised motion (GIF) and a JSON summary, written atomically.

    physim demo --out out/demo
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from physim.config import check_int, check_positive
from physim.io.atomic import atomic_path, atomic_write_text

__all__ = ["DemoConfig", "DemoResult", "cli_demo", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Fit a spring chain's initial velocities through the Warp bridge and save loss.png, chain.gif, result.json."""

    out: Path = Path("out/demo")
    """Folder for loss.png, chain.gif and result.json."""
    iterations: int = 80
    """Adam iterations."""
    lr: float = 0.1
    """Initial Adam learning rate (on log-stiffness and on velocity in m/s); cosine decay to 0."""
    steps: int = 60
    """Control steps of the rollout (10 substeps of 1 ms each)."""
    particles: int = 8
    """Particles in the chain."""
    true_stiffness: float = 150.0
    """Stiffness [N/m] of the chain that produced the target."""
    initial_stiffness: float = 60.0
    """First guess of the stiffness [N/m]."""
    checkpoint_every: int = 20
    """Checkpoint interval K of the differentiable rollout."""

    def __post_init__(self) -> None:
        check_int("iterations", self.iterations, 1, 100_000)
        check_positive("lr", self.lr)
        check_int("steps", self.steps, 1, 100_000)
        check_int("particles", self.particles, 2, 10_000)
        check_positive("true_stiffness", self.true_stiffness)
        check_positive("initial_stiffness", self.initial_stiffness)
        check_int("checkpoint_every", self.checkpoint_every, 1)


@dataclass(frozen=True)
class DemoResult:
    """Outcome of `run_demo`."""

    losses: list[float]
    stiffness: float
    target: list[float]
    reached: list[float]
    seconds: float
    files: dict[str, str]


def _swing(sim, v0: torch.Tensor, stiffness: torch.Tensor, steps: int, checkpoint_every: int | None):
    sim.params["stiffness"] = stiffness
    s0 = sim.reset(velocity=v0)
    forces = torch.zeros(steps, sim.cfg.particle_count, 2, dtype=torch.float64, device=sim.device)
    return sim.rollout(s0, forces, checkpoint_every=checkpoint_every, observe=lambda t, s: s.x)


def run_demo(cfg: DemoConfig | None = None, *, progress: bool = True) -> DemoResult:
    """Run the demo and write its files into ``cfg.out``."""
    from physim.springs import ChainConfig, WarpChain

    cfg = cfg or DemoConfig()
    t_start = time.perf_counter()
    sim = WarpChain(ChainConfig(particle_count=cfg.particles, substeps=10, stiffness=cfg.initial_stiffness,
                                damping=0.05))
    n = cfg.particles
    opts = {"dtype": torch.float64, "device": sim.device}

    # The target: where the end of a stiffer chain, thrown upwards, arrives.
    true_v0 = torch.zeros(n, 2, **opts)
    true_v0[:, 1] = torch.linspace(0.0, 2.0, n, **opts)
    with torch.no_grad():
        truth = _swing(sim, true_v0, torch.tensor([cfg.true_stiffness], **opts), cfg.steps, None)
    target = truth.state.x[-1].clone()

    log_k = torch.tensor([math.log(cfg.initial_stiffness)], **opts, requires_grad=True)
    v0 = torch.zeros(n, 2, **opts, requires_grad=True)
    opt = torch.optim.Adam([log_k, v0], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iterations)

    def loss_of(traj):
        return ((traj.state.x[-1] - target) ** 2).sum()

    with torch.no_grad():
        first = _swing(sim, v0, log_k.exp(), cfg.steps, None)
    losses: list[float] = []
    bar = _progress(cfg.iterations, progress)
    for _ in range(cfg.iterations):
        opt.zero_grad()
        traj = _swing(sim, v0, log_k.exp(), cfg.steps, cfg.checkpoint_every)
        loss = loss_of(traj)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        sched.step()
        bar.update(f"loss {losses[-1]:.3e} m²  k {float(log_k.detach().exp()):.1f} N/m")
    bar.close()
    with torch.no_grad():
        final = _swing(sim, v0, log_k.exp(), cfg.steps, None)
        final_loss = float(loss_of(final))
    losses.append(final_loss)

    out = Path(cfg.out)
    files = {
        "loss_curve": str(_plot_losses(losses, out / "loss.png")),
        "animation": str(_animate([first.observations, final.observations, truth.observations], target,
                                  out / "chain.gif")),
    }
    result = DemoResult(
        losses=losses,
        stiffness=float(log_k.detach().exp()),
        target=target.tolist(),
        reached=final.state.x[-1].tolist(),
        seconds=round(time.perf_counter() - t_start, 2),
        files=files,
    )
    files["summary"] = str(out / "result.json")
    atomic_write_text(out / "result.json", json.dumps({**asdict(result), "config": {
        k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}, indent=2))
    return result


def cli_demo(cfg: DemoConfig) -> DemoResult:
    """`physim demo`: run the demo and print the loss drop and the files written."""
    import sys

    result = run_demo(cfg, progress=sys.stderr.isatty())
    first, last = result.losses[0], result.losses[-1]
    print(f"loss {first:.4e} m² -> {last:.4e} m² ({first / max(last, 1e-300):.3g}x lower) "
          f"in {len(result.losses) - 1} iterations, {result.seconds:.1f} s")
    print(f"stiffness fitted: {result.stiffness:.2f} N/m")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return result


class _progress:
    """A rich progress bar on a terminal, periodic log lines otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.bar = total, 0, None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("fitting chain"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.description}"), transient=False)
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def update(self, text: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        elif self.done % max(1, self.total // 10) == 0:
            log.info("iteration %d/%d: %s", self.done, self.total, text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _plot_losses(losses: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.semilogy(range(len(losses)), losses, color="C0")
    ax.set_xlabel("Adam iteration")
    ax.set_ylabel("end-point error² [m²]")
    ax.set_title("Fitting stiffness and initial velocity (Warp chain)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _animate(trajectories: list[torch.Tensor], target: torch.Tensor, path: Path, frames: int = 30) -> Path:
    """GIF of chains side by side over time: first guess, optimised, and the target's chain."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    trajs = [t.detach().cpu().numpy() for t in trajectories]
    labels = ["first guess", "optimised", "target chain"]
    styles = [("C1", "--"), ("C0", "-"), ("0.6", ":")]
    allx = np.concatenate([t.reshape(-1, 2) for t in trajs])
    lo, hi = allx.min(0) - 0.05, allx.max(0) + 0.05
    images = []
    steps = trajs[0].shape[0]
    for i in np.linspace(0, steps - 1, frames).round().astype(int):
        fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=80)
        for traj, label, (color, ls) in zip(trajs, labels, styles):
            ax.plot(traj[i, :, 0], traj[i, :, 1], ls, marker="o", ms=3, color=color, label=label)
        tgt = target.detach().cpu().numpy()
        ax.plot(*tgt, marker="*", ms=12, color="C3", ls="none", label="target")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_title(f"t = {(i + 1) * 0.01:.2f} s")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        fig.tight_layout()
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    with atomic_path(path) as tmp:
        # Pillow's GIF duration is in milliseconds per frame.
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=80, loop=0)
    return path
