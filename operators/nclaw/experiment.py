"""The NCLaw experiment end to end: ground truth, training of every model, generalisation table.

Used by ``scripts/nclaw_generate.py``, ``scripts/nclaw_train.py``, ``scripts/nclaw_eval.py``
and ``scripts/bench_nclaw.py``; every stage caches its files under one folder, so an
interrupted run continues where it stopped::

    out/nclaw/data/<material>_<case>.h5          ground-truth trajectories
    out/nclaw/runs/<material>/<variant>/         checkpoint.pt, metrics.csv, law.pt | fitted.json
    out/nclaw/results.json                       training times and errors per case
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from physim.operators.nclaw.data import generate_trajectory, load_trajectory, save_trajectory
from physim.operators.nclaw.evaluate import evaluate_case
from physim.operators.nclaw.fit import VARIANTS, AnalyticFit, FitConfig, fit, load_model, model_material
from physim.operators.nclaw.scenes import CASES, MATERIALS, PARTNER, SceneSpec, ground_truth_material, make_simulator

from physim.config import check_choice, check_int
from physim.io.atomic import atomic_path, atomic_write_text
from physim.io.fingerprint import source_digest

__all__ = [
    "ExperimentConfig",
    "add_arguments",
    "config_from_args",
    "evaluate_all",
    "format_table",
    "ground_truth",
    "load_trained",
    "plot_last_frames",
    "run",
    "train_one",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """What to run and where.

    Attributes:
        out: Folder of data, runs and results.
        materials: Materials to learn.
        variants: Models to train (NCLaw variants and baselines).
        cases: Generalisation cases to evaluate.
        spec: Scene resolution and duration.
        fit: Training settings shared by every variant (its `variant` field is replaced).
        epochs: Optimizer steps per model (overrides `fit.epochs`).
        threads: Torch CPU threads (1 is fastest for these small batches on a shared CPU).
    """

    out: Path = Path("out/nclaw")
    materials: tuple[str, ...] = MATERIALS
    variants: tuple[str, ...] = VARIANTS
    cases: tuple[str, ...] = CASES
    spec: SceneSpec = field(default_factory=SceneSpec)
    fit: FitConfig = field(default_factory=FitConfig)
    epochs: int = 40
    threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        check_int("epochs", self.epochs, 1)
        check_int("threads", self.threads, 1)
        for m in self.materials:
            check_choice("materials", m, MATERIALS)
        for v in self.variants:
            check_choice("variants", v, VARIANTS)
        for c in self.cases:
            check_choice("cases", c, CASES)

    def run_dir(self, material: str, variant: str) -> Path:
        return self.out / "runs" / material / variant


def ground_truth(material: str, case: str, spec: SceneSpec, data_dir: Path):
    """The ground-truth trajectory of (material, case): read from `data_dir`, generated if absent.

    A file recorded with other settings or by other MPM code (its ``meta`` differs: e.g. a changed
    material law) is stale and is generated again, so models are never trained on old physics.
    """
    path = Path(data_dir) / f"{material}_{case}.h5"
    meta = {"material": material, "case": case, "partner": PARTNER[material] if case == "multi" else None,
            "spec": spec.to_dict(), "code": source_digest("physim.mpm")}
    if path.exists():
        traj = load_trajectory(path)
        if all(traj.meta.get(k) == v for k, v in json.loads(json.dumps(meta)).items()):
            return traj
        log.warning("%s was recorded with other settings or MPM code: generating it again", path)
    mats = {"main": ground_truth_material(material), "partner": ground_truth_material(PARTNER[material])}
    sim = make_simulator(case, spec, mats)
    traj = generate_trajectory(sim, spec.horizon(case), meta)
    save_trajectory(path, traj)
    log.info("wrote %s (%d particles, %d steps)", path, traj.x.shape[1], traj.steps)
    return traj


def train_one(cfg: ExperimentConfig, material: str, variant: str) -> dict[str, Any]:
    """Train (or resume, or reuse) one model on `material`'s training trajectory; returns its record."""
    from dataclasses import replace

    run_dir = cfg.run_dir(material, variant)
    record_path = run_dir / "record.json"
    traj = ground_truth(material, "train", cfg.spec, cfg.out / "data")
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("data_code") != traj.meta.get("code"):
            log.warning("%s was trained on a ground truth recorded by other MPM code; delete %s to retrain",
                        record_path, run_dir)
        return record
    fcfg = replace(cfg.fit, variant=variant, epochs=cfg.epochs)
    result = fit(material, traj, cfg.spec, fcfg, run_dir)
    record = {"material": material, "variant": variant, "data_code": traj.meta.get("code"),
              "train_seconds": result.wall_time,
              "epochs": len(result.history), "stopped": result.stopped,
              "final_full_rollout_loss": result.history[-1].get("valid_loss") if result.history else None,
              "best_full_rollout_loss": min((r.get("valid_loss", math.inf) for r in result.history), default=None),
              "path": str(result.path)}
    if isinstance(result.model, AnalyticFit):
        record["fitted"] = {k: float(v.detach()) for k, v in result.model.values().items()}
    atomic_write_text(record_path, json.dumps(record, indent=2))
    return record


def load_trained(cfg: ExperimentConfig, material: str, variant: str) -> torch.nn.Module:
    """The trained model of (material, variant) from its run folder."""
    run_dir = cfg.run_dir(material, variant)
    return load_model(run_dir / ("best.pt" if variant == "analytic" else "law.pt"), material, variant)


def evaluate_all(cfg: ExperimentConfig, material: str, variant: str,
                 positions: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
    """Errors of (material, variant) on every case; the multi case uses the partner's model of the same variant.

    Args:
        positions: When given, filled with each case's predicted positions (T, N, d) for plots.
    """
    cache = _EvalCache(cfg, material, variant)
    model = load_trained(cfg, material, variant)
    partner = None
    out: dict[str, dict[str, Any]] = {}
    for case in cfg.cases:
        hit = cache.get(case)
        if hit is not None:
            out[case] = hit[0]
            if positions is not None and hit[1] is not None:
                positions[case] = hit[1]
            log.info("%s/%s %s: %.4g %s (cached)", material, variant, case, hit[0]["error"], hit[0]["note"])
            continue
        mats = {"main": model_material(model)}
        if case == "multi":
            if partner is None:
                partner_name = PARTNER[material]
                train_one(cfg, partner_name, variant)
                partner = load_trained(cfg, partner_name, variant)
            mats["partner"] = model_material(partner)
        gt = ground_truth(material, case, cfg.spec, cfg.out / "data")
        res = evaluate_case(case, cfg.spec, mats, gt)
        out[case] = {"error": res.error, "note": res.note}
        cache.put(case, out[case], res.x)
        if positions is not None and res.x is not None:
            positions[case] = res.x
        log.info("%s/%s %s: %.4g %s", material, variant, case, res.error, res.note)
    return out


class _EvalCache:
    """Errors and predicted positions of one trained model per case, kept beside the model.

    Rerunning the benchmark (to add a material, or after an interruption) then evaluates only
    what is new. An entry is used only if it was computed for the same scene spec and the same
    model files (size and modification time of the model's and, for the multi-material case,
    its partner's files), so a retrained model is evaluated again.
    """

    def __init__(self, cfg: ExperimentConfig, material: str, variant: str):
        self.path = cfg.run_dir(material, variant) / "evaluation.pt"
        self.spec = cfg.spec.to_dict()
        self.main = _stamp(cfg.run_dir(material, variant))
        self.partner_dir = cfg.run_dir(PARTNER[material], variant)
        self.partner = _stamp(self.partner_dir)
        self.entries: dict[str, Any] = {}
        if self.path.exists():
            try:
                saved = torch.load(self.path, weights_only=True)
            except Exception as exc:  # a damaged cache is recomputed, never trusted
                log.warning("%s: unreadable evaluation cache, recomputing (%s)", self.path, exc)
                saved = None
            if isinstance(saved, dict) and isinstance(saved.get("entries"), dict):
                self.entries = saved["entries"]

    def _key(self, case: str) -> dict[str, Any]:
        return {"spec": self.spec, "model": self.main, "partner": self.partner if case == "multi" else None}

    def get(self, case: str) -> tuple[dict[str, Any], torch.Tensor | None] | None:
        e = self.entries.get(case)
        if not isinstance(e, dict) or e.get("key") != self._key(case) or not isinstance(e.get("result"), dict):
            return None
        return e["result"], e.get("x")

    def put(self, case: str, result: dict[str, Any], x: torch.Tensor | None) -> None:
        if case == "multi":  # the partner may have been trained by this very evaluation
            self.partner = _stamp(self.partner_dir)
        self.entries[case] = {"key": self._key(case), "result": dict(result), "x": x}
        with atomic_path(self.path) as tmp:
            torch.save({"entries": self.entries}, tmp)


def _stamp(run_dir: Path) -> list[list[Any]]:
    """Name, size and modification time of the model files of a run folder (what evaluation reads)."""
    out = []
    for name in ("law.pt", "best.pt", "record.json"):
        f = Path(run_dir) / name
        if f.exists():
            st = f.stat()
            out.append([name, st.st_size, st.st_mtime_ns])
    return out


def format_table(results: dict[str, Any], cases: tuple[str, ...]) -> str:
    """Markdown tables (one per material): train time and error per case, with the target ratios."""
    lines = []
    for material, per in results.items():
        lines += [f"**{material}**", "",
                  "| model | train time [s] | " + " | ".join(cases) + " |",
                  "|---|---|" + "---|" * len(cases)]
        for variant, rec in per.items():
            errs = [rec["errors"].get(c, {}).get("error", math.nan) for c in cases]
            stop = " (stopped: diverged)" if rec.get("stopped") else ""
            lines.append(f"| {variant}{stop} | {rec['train_seconds']:.0f} | "
                         + " | ".join(_fmt(e) for e in errs) + " |")
        for nclaw in ("invariant", "e3nn"):
            if nclaw in per and "mlp" in per:
                r = [_ratio(per["mlp"], per[nclaw], c) for c in cases]
                lines.append(f"| mlp / {nclaw} (target ≥ 10) | | " + " | ".join(_fmt(x, 1) for x in r) + " |")
            if nclaw in per and "analytic" in per:
                r = [_ratio(per[nclaw], per["analytic"], c) for c in cases]
                lines.append(f"| {nclaw} / analytic (target ≤ 2) | | " + " | ".join(_fmt(x, 2) for x in r) + " |")
        lines.append("")
    return "\n".join(lines)


def _ratio(num: dict, den: dict, case: str) -> float:
    a = num["errors"].get(case, {}).get("error", math.nan)
    b = den["errors"].get(case, {}).get("error", math.nan)
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.inf if math.isinf(a) and math.isfinite(b) else math.nan
    return a / b


def _fmt(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "diverged"
    return f"{x:.{digits}f}" if digits < 3 else f"{x:.3g}"


def plot_last_frames(cfg: ExperimentConfig, material: str, predictions: dict[str, dict[str, torch.Tensor]],
                     path: Path) -> None:
    """One image per material: the last frame of every case, ground truth and each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(cfg.cases)
    rows = ["ground truth", *predictions]
    fig, axes = plt.subplots(len(rows), len(cases), figsize=(2.2 * len(cases), 2.2 * len(rows)), squeeze=False)
    for j, case in enumerate(cases):
        gt = ground_truth(material, case, cfg.spec, cfg.out / "data").x[-1]
        for i, name in enumerate(rows):
            ax = axes[i][j]
            x = gt if i == 0 else predictions[name].get(case, [None])[-1]
            if i:
                ax.scatter(gt[:, 0], gt[:, 1], s=0.5, c="0.8", zorder=0)
            if x is not None:
                ax.scatter(x[:, 0], x[:, 1], s=1.5, c="k" if i == 0 else "C0")
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


def run(cfg: ExperimentConfig) -> dict[str, Any]:
    """Generate, train every (material, variant), evaluate every case; write results and figures.

    Trains everything first (the multi-material case needs each material's partner), then
    evaluates. Writes OUT/results.json, OUT/results.md and OUT/figures/<material>.png and
    prints the tables. Cached stages are reused, so an interrupted run resumes.
    """
    import os
    import platform
    import time

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for material in cfg.materials:
        for variant in cfg.variants:
            results.setdefault(material, {})[variant] = train_one(cfg, material, variant)
    for material in cfg.materials:
        predictions: dict[str, dict[str, torch.Tensor]] = {}
        for variant in cfg.variants:
            predictions[variant] = {}
            results[material][variant]["errors"] = evaluate_all(cfg, material, variant, predictions[variant])
        plot_last_frames(cfg, material, predictions, cfg.out / "figures" / f"{material}.png")
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "spec": cfg.spec.to_dict(), "epochs": cfg.epochs,
           "seconds_this_call": time.perf_counter() - t0}
    atomic_write_text(cfg.out / "results.json", json.dumps({"env": env, "results": results}, indent=2))
    table = format_table(results, cfg.cases)
    atomic_write_text(cfg.out / "results.md", table + "\n")
    print(table)
    print(f"files in {cfg.out}")
    return results


def add_arguments(ap) -> None:
    """Command-line options shared by the scripts/nclaw_*.py and scripts/bench_nclaw.py."""
    ap.add_argument("--out", default="out/nclaw", help="folder of data, runs and results")
    ap.add_argument("--materials", nargs="+", default=list(MATERIALS), choices=MATERIALS)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--epochs", type=int, default=ExperimentConfig().epochs, help="optimizer steps per model")
    ap.add_argument("--steps", type=int, default=SceneSpec().steps, help="control steps of the training trajectory")
    ap.add_argument("--grid", type=int, default=SceneSpec().grid, help="grid nodes per axis")
    ap.add_argument("--dim", type=int, default=2, choices=(2, 3))
    ap.add_argument("--particles-per-cell", type=int, default=SceneSpec().particles_per_cell)
    ap.add_argument("--width", type=int, default=FitConfig().width, help="hidden width of the networks")
    ap.add_argument("--lr", type=float, default=None,
                    help="peak learning rate (default: 1e-2 for networks, 0.1 for the analytic parameters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snapshot-every", type=int, default=0,
                    help="also save each model every N epochs in RUN/snapshots/ (0: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core CPU)")


def config_from_args(args) -> ExperimentConfig:
    """An `ExperimentConfig` from the options of `add_arguments`; also sets torch's thread count."""
    torch.set_num_threads(args.threads)
    spec = SceneSpec(dim=args.dim, grid=args.grid, steps=args.steps, particles_per_cell=args.particles_per_cell)
    return ExperimentConfig(out=Path(args.out), materials=tuple(args.materials), variants=tuple(args.variants),
                            cases=tuple(args.cases), spec=spec, epochs=args.epochs, threads=args.threads,
                            fit=FitConfig(width=args.width, seed=args.seed, lr=args.lr,
                                          snapshot_every=args.snapshot_every))
