"""Full-horizon gradients of the fluid tasks' `rollout_loss`: finite or not, and how large.

    .venv/bin/python scripts/bench_env_grads.py                                     # Transporting, Stabilizing, Pouring
    .venv/bin/python scripts/bench_env_grads.py --tasks Pouring --dtypes float32 float64 --horizon 300

Per task and dtype, in its own process: ``rollout_loss(demo actions).backward()`` over the
horizon with the env's automatic checkpoint plan (as `scripts/bench_envs.py` does), then the
loss, the gradient's norm, the number of control steps whose gradient row holds a NaN or an
inf, and the largest and the median row norm (how unevenly the sensitivity spreads over the
episode). The actions are the task's demo (zeros where a task has none). Gradient norms of a
long fluid rollout are large for a physical reason (the flow amplifies perturbations), so the
figure to read is whether they are finite and agree in size between float32 and float64, not
their value; `docs/benchmarks.md` ("Fluid environments") has the finite-difference checks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def worker(task: str, dtype: str, horizon: int | None) -> dict:
    import gymnasium as gym
    import physim.envs  # noqa: F401
    import torch
    from physim.envs.fluid.registry import env_id

    torch.set_num_threads(1)
    kw = {"quality": "cpu", "dtype": dtype} | ({} if horizon is None else {"horizon": horizon})
    env = gym.make(env_id(task), **kw)
    u = env.unwrapped
    env.reset(seed=0)
    a = torch.as_tensor(u.demo_actions(), dtype=torch.float64).requires_grad_(True)
    t0 = time.process_time()
    loss = u.rollout_loss(a)
    loss.backward()
    cpu = time.process_time() - t0
    g = a.grad
    rows = g.norm(dim=1)
    bad = ~torch.isfinite(g).all(dim=1)
    finite = rows[~bad]
    return {"task": task, "dtype": dtype, "horizon": int(a.shape[0]), "loss": float(loss),
            "grad_norm": float(g.norm()), "nonfinite_steps": int(bad.sum()),
            "first_nonfinite": int(bad.nonzero()[0, 0]) if bool(bad.any()) else None,
            "last_nonfinite": int(bad.nonzero()[-1, 0]) if bool(bad.any()) else None,
            "row_max": float(finite.max()) if finite.numel() else float("nan"),
            "row_median": float(finite.median()) if finite.numel() else float("nan"),
            "fb_cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    from physim.envs.fluid.registry import TASKS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=["Transporting", "Stabilizing", "Pouring"])
    ap.add_argument("--dtypes", nargs="*", default=["float32"], choices=("float32", "float64"))
    ap.add_argument("--horizon", type=int, default=None, help="control steps (default: each task's horizon)")
    ap.add_argument("--json", type=Path, default=Path("out/bench_env_grads.json"))
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.horizon)))
        return 0
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        ap.error(f"unknown task {unknown[0]!r}: expected some of {', '.join(TASKS)}")
    from tqdm import tqdm

    rows = []  # progress on stderr; the table on stdout
    print("| task | dtype | steps | loss | grad norm | non-finite steps | max / median step-row norm | fwd+bwd cpu s |")
    print("|---|---|---|---|---|---|---|---|")
    for task, dtype in tqdm([(t, d) for t in args.tasks for d in args.dtypes], desc="tasks", leave=False):
        cmd = [sys.executable, __file__, "--worker", task, dtype]
        if args.horizon is not None:
            cmd += ["--horizon", str(args.horizon)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if res.returncode != 0:
            tail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "?"
            print(f"| {task} | {dtype} | failed: {tail} |", flush=True)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(r)
        span = "" if not r["nonfinite_steps"] else f" (steps {r['first_nonfinite']}–{r['last_nonfinite']})"
        print(f"| {task} | {dtype} | {r['horizon']} | {r['loss']:.6g} | {r['grad_norm']:.3g} "
              f"| {r['nonfinite_steps']}{span} | {r['row_max']:.3g} / {r['row_median']:.3g} | {r['fb_cpu']:.1f} |",
              flush=True)
    from physim.io.atomic import atomic_write_text

    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps({"rows": rows, "load_average": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
