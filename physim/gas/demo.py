"""The `physim gas demo` job: steer a fan so that its smoke reaches a target, by gradient descent.

A 2D room (closed walls, a solid shelf in the middle) with one fan near the floor that
emits smoke. The unknown is the fan's jet direction (an angle [rad]); the loss is
minus the fraction of the emitted smoke inside a target box after the last step.
Gradients come through the Taichi kernels of the gas grid (every Jacobi sweep
included) and a checkpointed rollout; the optimiser is torch's Adam. It writes the
first and the optimised plume as GIFs, the loss curve as a PNG and a JSON summary,
all atomically.

    physim gas demo --out out/gas
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

__all__ = ["GasDemoConfig", "cli_demo", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GasDemoConfig:
    """Settings of the fan-steering demo."""

    out: Path = Path("out/gas")
    """Folder for plume_first.gif, plume_optimised.gif, loss.png and result.json."""
    resolution: int = 40
    """Cells per side of the square room."""
    steps: int = 50
    """Control steps of the rollout (dt = 0.03 s each)."""
    iterations: int = 12
    """Adam iterations on the fan angle."""
    lr: float = 0.15
    """Adam learning rate [rad]."""
    initial_angle: float = 90.0
    """First guess of the jet direction [degrees from +x]; 90 blows straight up into the shelf."""
    checkpoint_every: int = 10
    """Checkpoint interval K of the differentiable rollout."""

    def __post_init__(self) -> None:
        check_int("resolution", self.resolution, 12, 512)
        check_int("steps", self.steps, 1, 100_000)
        check_int("iterations", self.iterations, 0, 10_000)
        check_positive("lr", self.lr)
        check_int("checkpoint_every", self.checkpoint_every, 1)


def _scene(cfg: GasDemoConfig):
    from physim.gas import FanConfig, GasConfig, GasSimulator, box_mask

    n = cfg.resolution
    fan = FanConfig(center=(0.5, 0.12), direction=(0.0, 1.0), strength=25.0, radius=0.05, mix=0.5, emit=(1.0,))
    gas = GasConfig(resolution=(n, n), cell_size=1.0 / n, dt=0.03, buoyancy=1.0, jacobi_iterations=60,
                    jacobi_omega=0.8, fans=(fan,))
    shelf = box_mask(gas.resolution, gas.cell_size, (0.3, 0.45), (0.7, 0.55))
    sim = GasSimulator(gas, solid=shelf)
    target = box_mask(gas.resolution, gas.cell_size, (0.0, 0.55), (0.3, 1.0)).to(sim.dtype)
    return sim, target


def _rollout(sim, angle: torch.Tensor, steps: int, k: int | None, keep: bool = False):
    direction = torch.stack([torch.cos(angle), torch.sin(angle)])[None]
    actions = sim.fan_action(direction=direction).expand(steps, -1, -1)
    observe = (lambda t, s: s.smoke[..., 0]) if keep else None
    return sim.rollout(sim.reset(), actions, checkpoint_every=k, observe=observe)


def run_demo(cfg: GasDemoConfig) -> dict:
    """Run the demo and return its summary (also written to ``out/result.json``)."""
    from physim.gas import GasState, render_gif

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim, target = _scene(cfg)
    angle = torch.tensor(math.radians(cfg.initial_angle), dtype=sim.dtype, requires_grad=True)
    opt = torch.optim.Adam([angle], lr=cfg.lr)
    losses, angles = [], []

    def loss_of(state) -> torch.Tensor:
        smoke = state.smoke[..., 0]
        return -(smoke * target).sum() / smoke.sum().clamp_min(1e-9)

    from tqdm import tqdm

    first = None
    for _ in tqdm(range(cfg.iterations + 1), desc="gas demo", disable=None):
        res = _rollout(sim, angle, cfg.steps, cfg.checkpoint_every)
        loss = loss_of(res.state)
        losses.append(float(loss.detach()))
        angles.append(math.degrees(float(angle.detach())))
        if first is None:
            first = float(angle.detach())
        if len(losses) > cfg.iterations:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()

    files = {}
    with torch.no_grad():
        for name, a in (("plume_first.gif", first), ("plume_optimised.gif", float(angle.detach()))):
            res = _rollout(sim, torch.tensor(a, dtype=sim.dtype), cfg.steps, None, keep=True)
            zero = torch.zeros(*sim.cfg.resolution, 2, dtype=sim.dtype)
            states = [GasState(velocity=zero, smoke=q[..., None], pressure=zero[..., 0],
                               time=torch.tensor((t + 1) * sim.cfg.control_dt))
                      for t, q in enumerate(res.observations[:: max(1, cfg.steps // 20)])]
            files[name] = str(render_gif(states, out / name, sim=sim, arrows=False, fps=8))
    files["loss.png"] = str(_plot_losses(losses, out / "loss.png"))
    summary = {
        "losses": losses,
        "angles_deg": angles,
        "target_fraction_first": -losses[0],
        "target_fraction_final": -losses[-1],
        "seconds": time.perf_counter() - t0,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "files": files,
    }
    atomic_write_text(out / "result.json", json.dumps(summary, indent=2))
    log.info("smoke in the target: %.1f%% -> %.1f%% (angle %.0f° -> %.0f°), files in %s",
             100 * summary["target_fraction_first"], 100 * summary["target_fraction_final"], angles[0], angles[-1],
             out)
    return summary


def _plot_losses(losses: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot([-v for v in losses], marker="o")
    ax.set_xlabel("Adam iteration")
    ax.set_ylabel("smoke fraction in target")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def cli_demo(cfg: GasDemoConfig) -> None:
    """Entry point of `physim gas demo`."""
    run_demo(cfg)
