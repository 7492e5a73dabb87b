"""Train GIOROM (or the GNS baseline) on an MPM dataset, then evaluate long rollouts per material.

Purpose: the end-to-end recipe of docs/giorom.md: generate data with `physim data mpm`, train
with physim's shared loop (resumable: run the same command again to continue), roll out
every test trajectory for `--steps` steps, report the position MSE per material and write
videos of prediction vs ground truth.

Command (small CPU run):

    physim data mpm --preset cpu-2d --out data/mpm-cpu-2d
    python scripts/train_giorom.py --data data/mpm-cpu-2d --model giorom --sparsity 8 --max-wall-time 600
    python scripts/train_giorom.py --data data/mpm-cpu-2d --model gns --max-wall-time 600

Outputs in `--run-dir` (default runs/<model>): best.pt, checkpoint.pt, metrics, eval.json, videos/*.gif.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from physim.operators.lagrangian import load_split
from physim.operators.lagrangian.evaluate import evaluate_rollouts, summarize
from physim.operators.lagrangian.features import particle_spacing
from physim.operators.lagrangian.train import train_lagrangian
from physim.operators.lagrangian.video import write_comparison_video
from physim.operators.training import TrainConfig

from physim.config import check_choice
from physim.io.atomic import atomic_write_text


@dataclass(frozen=True, kw_only=True)
class TrainGioromConfig:
    """Train and evaluate a learned particle simulator on a `physim data mpm` dataset."""

    data: Path = Path("data/mpm-cpu-2d")
    """Dataset folder (with manifest.json)."""
    model: str = "giorom"
    """giorom or gns."""
    run_dir: Path | None = None
    """Run folder (default runs/<model>[-<sparsity>])."""
    sparsity: float = 8.0
    """GIOROM: dense particles per sparse particle."""
    radius: float | None = None
    """Dense connectivity radius [m] (default 2.5 grid-free particle spacings, from the data)."""
    hidden: int = 64
    """Latent width."""
    layers: int = 5
    """GNS message-passing steps."""
    noise_std: float = 3e-4
    """Training noise [m] on the last input position."""
    epochs: int = 1000
    """Upper bound on epochs (the wall-time budget usually ends training)."""
    max_wall_time: float = 600.0
    """Training budget [s]."""
    batch_size: int = 2
    """Scenes per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, cosine decay)."""
    steps: int = 100
    """Rollout steps evaluated on each test trajectory."""
    videos: int = 1
    """Videos per material."""
    seed: int = 0
    """Seed of the run."""

    def __post_init__(self) -> None:
        check_choice("model", self.model, ("giorom", "gns"))


def build_model(cfg: TrainGioromConfig, dim: int, bounds, radius: float, num_types: int):
    from physim.operators.giorom import GIOROM
    from physim.operators.gns import GNS

    if cfg.model == "gns":
        return GNS(dim=dim, radius=radius, bounds=bounds, num_types=num_types, hidden=cfg.hidden, layers=cfg.layers,
                   noise_std=cfg.noise_std)
    return GIOROM(dim=dim, radius=radius * cfg.sparsity ** (1.0 / dim), sparsity=cfg.sparsity, bounds=bounds,
                  num_types=num_types, hidden=cfg.hidden, noise_std=cfg.noise_std, gno_width=cfg.hidden)


def main(cfg: TrainGioromConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(cfg.seed)
    train_files, valid_files, test_files = (load_split(cfg.data, s) for s in ("train", "valid", "test"))
    train = [t for f in train_files for t in f.trajectories]
    valid = [t for f in valid_files for t in f.trajectories]
    test = [t for f in test_files for t in f.trajectories]
    meta = train_files[0]
    bounds = meta.bounds.tolist()
    radius = cfg.radius or 2.5 * particle_spacing([t.positions[0] for t in train])
    model = build_model(cfg, meta.dim, bounds, radius, len(meta.materials))
    run_dir = cfg.run_dir or Path("runs") / (cfg.model if cfg.model == "gns" else f"giorom-{cfg.sparsity:g}")
    tcfg = TrainConfig(run_dir=run_dir, epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adamw", lr=cfg.lr,
                       weight_decay=1e-6, schedule="cosine", warmup_steps=50, grad_clip=1.0,
                       max_wall_time=cfg.max_wall_time, seed=cfg.seed)
    result = train_lagrangian(model, train, valid, tcfg)
    from physim.operators import load

    best = load(result.best_model_path)
    results = evaluate_rollouts(best, test, steps=cfg.steps, keep=True)
    summary = summarize(results)
    for material, row in summary.items():
        print(f"{material:>14}: rollout MSE {row['mse']:.3e} m² over {cfg.steps} steps, "
              f"{1e3 * row['seconds_per_step']:.1f} ms/step ({row['trajectories']} trajectories)")
    shown: dict[str, int] = {}
    for r in results:
        if shown.get(r.material, 0) < cfg.videos:
            shown[r.material] = shown.get(r.material, 0) + 1
            write_comparison_video(run_dir / "videos" / f"{r.name}.gif", r.truth, r.prediction, bounds=bounds,
                                   title=f"{cfg.model} — {r.material} ({r.name}), MSE {r.mse:.2e} m²")
    out = {"model": best.metadata(), "radius": radius, "epochs": len(result.history),
           "wall_time": result.wall_time, "summary": summary,
           "per_trajectory": [{"name": r.name, "material": r.material, "mse": r.mse,
                               "mse_per_step": r.mse_per_step} for r in results]}
    atomic_write_text(run_dir / "eval.json", json.dumps(out, indent=2))
    print(f"wrote {run_dir / 'eval.json'} and {run_dir / 'videos'}")
    return out


if __name__ == "__main__":
    main(tyro.cli(TrainGioromConfig))
