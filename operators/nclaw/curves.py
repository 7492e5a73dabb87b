"""Errors against training length: every saved snapshot of a run evaluated on the unseen cases.

A run trained with ``snapshot_every`` (``--snapshot-every N``) keeps its model after every
N-th epoch in ``runs/<material>/<variant>/snapshots/epoch_NNNN.pt``. `snapshot_errors`
rolls each of them out on the single-material cases (the multi-material case needs a
partner model of the same epoch and is left out) and `plot_curves` draws, per material,
the full-rollout training loss of every epoch (metrics.csv) and the case errors of the
snapshots, with the NCLaw / analytic ratios at equal epochs.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from physim.operators.nclaw.evaluate import evaluate_case
from physim.operators.nclaw.experiment import ExperimentConfig, ground_truth
from physim.operators.nclaw.fit import load_model, model_material

from physim.errors import ConfigError

__all__ = ["plot_curves", "read_metrics", "snapshot_errors"]

log = logging.getLogger(__name__)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's metrics.csv as floats ([] when there is none)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    try:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]
    except ValueError as exc:
        raise ConfigError("metrics.csv", str(path), f"a CSV of numbers ({exc})") from None


def snapshot_errors(cfg: ExperimentConfig, material: str, variant: str) -> list[dict[str, Any]]:
    """Error of every snapshot of (material, variant) on every single-material case of `cfg.cases`.

    Returns:
        One row per snapshot: ``{"epoch": int, "<case>": error, ...}`` (inf for a diverged rollout).
    """
    folder = cfg.run_dir(material, variant) / "snapshots"
    cases = [c for c in cfg.cases if c != "multi"]
    rows = []
    for path in sorted(folder.glob("epoch_*.pt")):
        model = load_model(path, material, variant)
        row: dict[str, Any] = {"epoch": int(path.stem.split("_")[1])}
        for case in cases:
            gt = ground_truth(material, case, cfg.spec, cfg.out / "data")
            row[case] = evaluate_case(case, cfg.spec, {"main": model_material(model)}, gt).error
        log.info("%s/%s epoch %d: %s", material, variant, row["epoch"],
                 " ".join(f"{c} {row[c]:.3g}" for c in cases))
        rows.append(row)
    return rows


def plot_curves(material: str, metrics: dict[str, list[dict[str, float]]],
                errors: dict[str, list[dict[str, Any]]], cases: list[str], path: Path) -> None:
    """Three panels: full-rollout training loss per epoch, snapshot errors, NCLaw / analytic ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, (variant, rows) in enumerate(metrics.items()):
        ep = [r["epoch"] + 1 for r in rows if "valid_loss" in r]
        axes[0].semilogy(ep, [r["valid_loss"] for r in rows if "valid_loss" in r], f"C{i}", label=variant, lw=1)
    axes[0].set(xlabel="epoch", ylabel="full-rollout loss [dx²]", title=f"{material}: validation loss per epoch")
    axes[0].legend(fontsize=8)
    styles = ["-", "--", ":", "-."]
    for i, (variant, rows) in enumerate(errors.items()):
        for j, case in enumerate(cases):
            axes[1].semilogy([r["epoch"] for r in rows], [r[case] for r in rows], f"C{i}", ls=styles[j % 4],
                             marker=".", label=f"{variant} {case}" if j == 0 or i == 0 else None)
    axes[1].set(xlabel="epoch", ylabel="relative position error", title="snapshots on the cases")
    axes[1].legend(fontsize=7, ncol=2)
    ana = {r["epoch"]: r for r in errors.get("analytic", [])}
    for i, (variant, rows) in enumerate(errors.items()):
        if variant in ("analytic", "mlp"):
            continue
        for j, case in enumerate(cases):
            pts = [(r["epoch"], r[case] / ana[r["epoch"]][case]) for r in rows
                   if r["epoch"] in ana and ana[r["epoch"]][case] > 0 and math.isfinite(r[case])]
            if pts:
                axes[2].semilogy(*zip(*pts), f"C{i}", ls=styles[j % 4], marker=".", label=f"{variant} {case}")
    axes[2].axhline(2.0, color="k", lw=0.8)
    axes[2].set(xlabel="epoch", ylabel="error / analytic's at the same epoch", title="target: ≤ 2 (black line)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
