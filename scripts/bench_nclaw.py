"""NCLaw benchmark: per material, training time and generalisation error of NCLaw-invariant,
NCLaw-e3nn, the plain-MLP baseline and the fitted analytic model, all trained in this run on
the same single trajectory.

    .venv/bin/python scripts/bench_nclaw.py --out out/bench_nclaw --epochs 30

Writes OUT/results.json, OUT/results.md (the tables of docs/benchmarks.md) and
OUT/figures/<material>.png (final frame of each case: ground truth vs models). Every
stage is cached under OUT: rerunning resumes (training times add up over resumptions).
Ratios in the table compare models of the same run; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import torch
from physim.operators.nclaw.experiment import (
    add_arguments,
    config_from_args,
    evaluate_all,
    format_table,
    ground_truth,
    train_one,
)

from physim.io.atomic import atomic_write_text


def plot(cfg, material: str, predictions: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(cfg.cases)
    variants = ["ground truth", *predictions]
    fig, axes = plt.subplots(len(variants), len(cases), figsize=(2.2 * len(cases), 2.2 * len(variants)),
                             squeeze=False)
    for j, case in enumerate(cases):
        gt = ground_truth(material, case, cfg.spec, cfg.out / "data").x[-1]
        for i, name in enumerate(variants):
            ax = axes[i][j]
            x = gt if name == "ground truth" else predictions[name].get(case, [None])[-1]
            if x is not None:
                ax.scatter(x[:, 0], x[:, 1], s=1.5, c="k" if i == 0 else "C0")
                if i:
                    ax.scatter(gt[:, 0], gt[:, 1], s=0.5, c="0.8", zorder=0)
            ax.set(xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[], aspect="equal")
            if i == 0:
                ax.set_title(case, fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"{material}: last frame (grey: ground truth)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.set_defaults(out="out/bench_nclaw")
    args = ap.parse_args()
    cfg = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    results: dict = {}
    # Train everything first: the multi-material case needs each material's partner.
    for material in cfg.materials:
        for variant in cfg.variants:
            results.setdefault(material, {})[variant] = train_one(cfg, material, variant)
    for material in cfg.materials:
        predictions: dict = {}
        for variant in cfg.variants:
            predictions[variant] = {}
            results[material][variant]["errors"] = evaluate_all(cfg, material, variant, predictions[variant])
        plot(cfg, material, predictions, cfg.out / "figures" / f"{material}.png")
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "spec": cfg.spec.to_dict(), "epochs": cfg.epochs,
           "seconds_total": time.perf_counter() - t0, "command": "scripts/bench_nclaw.py " + " ".join(
               f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in vars(args).items())}
    atomic_write_text(cfg.out / "results.json", json.dumps({"env": env, "results": results}, indent=2))
    table = format_table(results, cfg.cases)
    atomic_write_text(cfg.out / "results.md", table + "\n")
    print(table)
    print(f"total {env['seconds_total']:.0f} s; files in {cfg.out}")


if __name__ == "__main__":
    main()
