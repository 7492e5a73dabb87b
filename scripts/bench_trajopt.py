"""Benchmark: every trajectory-optimisation method at the same budget, three seeds, on each task.

    .venv/bin/python scripts/bench_trajopt.py                       # chain tasks, budget 200, seeds 0 1 2
    .venv/bin/python scripts/bench_trajopt.py --tasks physim/Pouring-v0 --budget 200
    .venv/bin/python scripts/bench_trajopt.py --toys --budget 100    # toy problems only (seconds)
    .venv/bin/python scripts/bench_trajopt.py --methods gradient hybrid hybrid:sample --grad-costs 2.48 3.50 2.65
    .venv/bin/python scripts/bench_trajopt.py --tasks IceCreamStatic:40 LatteArt:30 Stabilizing:60 \
        --quality bench --budget 80            # fluid tasks: NAME:STEPS, small CPU scenes

``hybrid:sample`` is `hybrid` with ``HybridConfig(start="sample")``; ``--grad-costs``
fixes the gradient cost per task (in task order) instead of measuring it, to compare
with an earlier run. A fluid task is named ``NAME:STEPS`` (a short horizon of STEPS
control steps); ``--quality bench`` is the ``cpu`` preset with one particle per cell (two
for emitted material) and 50 observed particles per body, for a shared 2-core machine.

Per task the cost of a gradient call is measured once (`measure_grad_cost`) and the same
value charges every method and seed, so the budget means the same compute for all.
Reported: final best loss (mean ± std over seeds), its ratio to plain ``gradient`` (the
baseline, same run), and wall time (mean ± std). Methods whose implementation is not
installed (``cbo``/``zo`` before physim.optim's consensus and zeroth-order modules land)
are listed as skipped. Wall times on a shared machine are noisy: compare within a row.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from physim.optim.trajectory import METHODS, HybridConfig, measure_grad_cost, optimize, toys
from physim.optim.trajectory.tasks import CHAIN_TASK_IDS, make_task

VARIANTS = {"hybrid:sample": ("hybrid", HybridConfig(start="sample"))}
#: Methods that use no random numbers: one run stands for every seed (the table says so).
DETERMINISTIC = {"gradient"}


def _available(method: str) -> bool:
    module = {"cbo": "physim.optim.cbo", "zo": "physim.optim.zeroth_order"}.get(method)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _toy_problems():
    return {
        "toy/quadratic-10": toys.quadratic(dim=10),
        "toy/rosenbrock-6": toys.rosenbrock(dim=6),
        "toy/abs-10": toys.abs_loss(dim=10),
        "toy/two-basin-2": toys.two_basin(dim=2),
    }


def _bench_quality():
    """The ``cpu`` preset with fewer particles: same grid, substeps, geometry, bounds and control step."""
    from dataclasses import replace

    from physim.envs.fluid.quality import QUALITIES

    return replace(QUALITIES["cpu"], name="bench", particles_per_cell=1, emitted_particles_per_cell=2,
                   obs_particles=50)


def _make(spec: str, quality: str | None):
    """A task from ``ID`` or ``ID:STEPS``; fluid tasks get the quality preset."""
    from physim.optim.trajectory.tasks import resolve_task_id

    name, _, steps = spec.partition(":")
    task_id = resolve_task_id(name)
    env_kwargs = None
    if task_id not in CHAIN_TASK_IDS and quality is not None:
        env_kwargs = {"quality": _bench_quality() if quality == "bench" else quality}
    return make_task(task_id, steps=int(steps) if steps else None, env_kwargs=env_kwargs)


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.4g} ± {s:.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(CHAIN_TASK_IDS), help="task ids")
    parser.add_argument("--toys", action="store_true", help="benchmark the toy problems instead of tasks")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="methods, or hybrid:sample")
    parser.add_argument("--budget", type=float, default=200)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--grad-costs", nargs="*", type=float, default=None,
                        help="gradient cost of each task, in --tasks order (default: measured)")
    parser.add_argument("--quality", choices=("bench", "cpu", "paper"), default=None,
                        help="resolution of the fluid tasks (default: the env's, cpu)")
    parser.add_argument("--json", type=Path, default=Path("out/bench_trajopt.json"),
                        help="results, rewritten after every method (a partial run keeps what it has)")
    args = parser.parse_args(argv)

    problems = {}
    if args.toys:
        problems = {name: (p, x0, 2.0) for name, (p, x0) in _toy_problems().items()}
    rows = []
    if args.grad_costs is not None and len(args.grad_costs) != len(args.tasks):
        parser.error(f"--grad-costs needs one value per task ({len(args.tasks)})")
    for k, task_id in enumerate([] if args.toys else args.tasks):
        task = _make(task_id, args.quality)
        grad_cost = (args.grad_costs[k] if args.grad_costs is not None
                     else measure_grad_cost(task.problem, task.init_actions, repeats=5))
        problems[task_id] = (task.problem, task.init_actions, grad_cost)
    for name, (problem, x0, grad_cost) in problems.items():
        print(f"\n## {name}  (budget {args.budget:g} forward calls; a gradient call costs {grad_cost:.2f})",
              flush=True)
        results: dict[str, list] = {}
        for method in args.methods:
            if not _available(method):
                results[method] = None
                continue
            runs = []
            for seed in args.seeds:
                if method in DETERMINISTIC and runs:
                    runs.append(runs[0])  # same calls, same result: not run again
                    continue
                t0 = time.perf_counter()
                name_, config = VARIANTS.get(method, (method, None))
                res = optimize(problem, x0, name_, args.budget, seed, grad_cost=grad_cost, config=config)
                runs.append((res.best_loss, time.perf_counter() - t0, res.initial_loss, res.info.get("phases")))
                phases = " ".join(f"{p['phase'][0]}{p['end_cost'] - p['start_cost']:.0f}:{p['best_loss']:.4g}"
                                  for p in res.info.get("phases", []))
                print(f"  {method:9s} seed {seed}: loss {res.best_loss:.5g} (initial {res.initial_loss:.5g}), "
                      f"{runs[-1][1]:.1f} s {phases}", file=sys.stderr, flush=True)
            results[method] = runs
            partial = [*rows, *({"task": name, "method": m, "grad_cost": grad_cost, "budget": args.budget,
                                 "losses": [r[0] for r in rs], "seconds": [r[1] for r in rs], "initial": rs[0][2],
                                 "phases": [r[3] for r in rs]} for m, rs in results.items() if rs)]
            _save(args.json, partial)
        base = results.get("gradient")
        base_mean = statistics.fmean(r[0] for r in base) if base else math.nan
        print("\n| method | final loss (mean ± std) | loss / gradient | wall time [s] |")
        print("|---|---|---|---|")
        for method, runs in results.items():
            if runs is None:
                print(f"| {method} | skipped: implementation not installed (issue 10) | — | — |")
                continue
            losses = [r[0] for r in runs]
            ratio = statistics.fmean(losses) / base_mean if base and base_mean > 0 else math.nan
            label = f"{method} (deterministic, 1 run)" if method in DETERMINISTIC and len(runs) > 1 else method
            times = [r[1] for r in runs[:1]] if method in DETERMINISTIC else [r[1] for r in runs]
            print(f"| {label} | {_fmt(losses)} | {ratio:.3g} | {_fmt(times)} |")
            rows.append({"task": name, "method": method, "grad_cost": grad_cost, "budget": args.budget,
                         "losses": losses, "seconds": [r[1] for r in runs], "initial": runs[0][2],
                         "phases": [r[3] for r in runs]})
        sys.stdout.flush()
    _save(args.json, rows)
    return 0


def _save(path: Path, rows: list) -> None:
    from physim.io.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"torch": torch.__version__, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
