"""Benchmark of the hand-written material adjoints: fwd+bwd / fwd CPU-time ratios before/after, per-launch times.

    git archive <base commit> | tar -x -C /tmp/physim_base      # the tree before the change
    .venv/bin/python scripts/bench_material_adjoints.py --before /tmp/physim_base

Per task (at ``cpu`` quality, a shortened horizon per task), worker processes alternate between
the tree given by ``--before`` (its ``physim`` package put first on ``sys.path``; ``physim.envs``
is the same in both trees) and this tree, ``--rounds`` times each, so that both see the same load:

- **ratio**: ``rollout_loss(actions)`` forward under ``torch.no_grad`` and forward+backward, in the
  same process, twice each (the smaller CPU time of each kept); CPU time of the process (every thread);
- **profile** (one more process per tree): the thread CPU time of every Warp launch of one
  forward+backward, summed per kernel and direction (forward or Warp's adjoint); the material's
  kernels (stress, projection, shape matching) are listed.

The ratio is the issue's measure (fwd+bwd ≤ 4× forward); the shortened horizons make it differ
from a full episode's (checkpoint plan, emitters releasing material over time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HORIZONS = {"IceCreamDynamic": 300, "IceCreamStatic": 200, "LatteArt": 100, "Transporting": 150}
MATERIAL_KERNELS = ("stress", "stress_stored", "stress_stored_adjoint", "project_trial", "project_stored",
                    "project_stored_adjoint", "stress_elastic", "stress_elastic_adjoint", "rigid_sums1",
                    "rigid_sums2", "rigid_apply", "rigid_frame", "rigid_apply_adjoint", "rigid_body_adjoint")


def _profile_launches():
    """Patch `warp.launch` to sum the calling thread's CPU time per (kernel, forward|adjoint)."""
    import warp as wp

    totals: dict = defaultdict(lambda: [0.0, 0])
    launch = wp.launch

    def timed(kernel, *args, **kw):
        t = time.thread_time()
        out = launch(kernel, *args, **kw)
        key = (getattr(kernel, "key", str(kernel)).split("__")[-1], "adjoint" if kw.get("adjoint") else "forward")
        rec = totals[key]
        rec[0] += time.thread_time() - t
        rec[1] += 1
        return out

    wp.launch = timed
    return totals


def worker(task: str, horizon: int, mode: str) -> dict:
    import torch
    from bench_envs import warmed_up_env  # this script's folder is first on sys.path

    import physim.mpm.backend as backend

    env, actions = warmed_up_env(task, "cpu", horizon)
    u = env.unwrapped
    out = {"task": task, "horizon": int(actions.shape[0]), "backend": backend.__file__,
           "particles": getattr(getattr(u._task, "sim", None), "particle_count", 0)}
    if mode == "profile":
        totals = _profile_launches()
        a = actions.clone().requires_grad_(True)
        t = time.process_time()
        u.rollout_loss(a).backward()
        out["fb_cpu"] = time.process_time() - t
        out["launches"] = {f"{k}:{d}": v for (k, d), v in totals.items()}
        return out
    fwd, fb = [], []
    for _ in range(2):
        with torch.no_grad():
            t = time.process_time()
            u.rollout_loss(actions)
            fwd.append(time.process_time() - t)
        a = actions.clone().requires_grad_(True)
        t = time.process_time()
        u.rollout_loss(a).backward()
        fb.append(time.process_time() - t)
        out["grad_norm"] = float(a.grad.norm())
    out.update(fwd_cpu=min(fwd), fb_cpu=min(fb))
    return out


def _run(tree: str | None, task: str, horizon: int, mode: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if tree:
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", task, "--horizon", str(horizon), "--mode", mode]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{task} ({tree or 'this tree'}, {mode}) failed: {res.stderr.strip()[-2000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["load"] = os.getloadavg()[0]
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=None, help="source tree of the baseline (its physim/ is imported)")
    ap.add_argument("--tasks", nargs="*", default=list(HORIZONS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("out/bench_material_adjoints.json"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--horizon", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="ratio", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.horizon, args.mode)))
        return 0
    if args.before is None or not (Path(args.before) / "physim" / "mpm" / "backend.py").is_file():
        ap.error(f"--before {args.before!r}: expected a source tree holding physim/mpm/backend.py")
    trees = {"before": str(Path(args.before).resolve()), "after": None}
    results: dict = {}
    for task in args.tasks:
        h = HORIZONS.get(task, 100)
        runs = {"before": [], "after": []}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                runs[name].append(_run(tree, task, h, "ratio"))
        prof = {name: _run(tree, task, h, "profile") for name, tree in trees.items()}
        results[task] = {"ratio": runs, "profile": prof}
        print(f"\n## {task} ({h} control steps, {runs['after'][0]['particles']} particles)", flush=True)
        print("| tree | round | load | fwd cpu s | fwd+bwd cpu s | ratio | grad norm |\n|---|---|---|---|---|---|---|")
        for k in range(args.rounds):
            for name in trees:
                r = runs[name][k]
                print(f"| {name} | {k + 1} | {r['load']:.1f} | {r['fwd_cpu']:.2f} | {r['fb_cpu']:.2f} "
                      f"| {r['fb_cpu'] / r['fwd_cpu']:.2f} | {r['grad_norm']:.4e} |")
        print("\n| kernel (direction) | before: s (launches) | after: s (launches) |\n|---|---|---|")
        keys = sorted({k for p in prof.values() for k in p["launches"] if k.split(":")[0] in MATERIAL_KERNELS})
        for k in keys:
            cells = []
            for name in trees:
                s, c = prof[name]["launches"].get(k, [0.0, 0])
                cells.append(f"{s:.3f} ({c})")
            print(f"| {k} | {' | '.join(cells)} |")
        mat = {name: sum(v[0] for k, v in prof[name]["launches"].items() if k.split(":")[0] in MATERIAL_KERNELS)
               for name in trees}
        print(f"| **material kernels, total** | {mat['before']:.3f} | {mat['after']:.3f} |")
        print(f"| (profiled fwd+bwd, cpu s) | {prof['before']['fb_cpu']:.2f} | {prof['after']['fb_cpu']:.2f} |",
              flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from physim.io.atomic import atomic_write_text

    atomic_write_text(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
