"""Where the forward+backward of a fluid task's `rollout_loss` goes: phases and Warp kernels.

    .venv/bin/python scripts/profile_env_backward.py --tasks LatteArt Stabilizing
    .venv/bin/python scripts/profile_env_backward.py --tasks LatteArt --horizon 100 --json out/prof.json

Per task, in its own process, after `bench_envs.warmed_up_env` (kernels compiled, goal recorded):
one `rollout_loss` under `torch.no_grad` (the forward, the ratio's denominator), then one
forward+backward with the env's checkpoint plan, split into phases by the calling thread's CPU
time (`time.thread_time`; Warp runs one CPU thread, torch is set to one):

- **untaped forward**: the checkpointed forward's segments (no graph);
- **taped tail**: the last M steps recorded by the forward pass (`keep_last`), or every step when
  the whole graph is stored;
- **taped recompute**: the segments re-run with the graph in backward;
- **autograd**: `torch.autograd.grad` over each segment, of which **warp backward** is the
  operations' `backward` (tape replay of the kernel adjoints, gradient copies);
- per phase, the Warp launches summed per kernel (``name:fwd`` or ``name:adj`` for Warp's own
  automatic adjoint; the hand-written adjoints are forward launches of ``*_adjoint`` kernels;
  the packed commands of `WarpBackend._replay` are timed with their re-packing), and
  "python/torch" = phase minus its launches.

The profile adds about 2 µs per launch; compare phases within one run, not with `bench_envs`.
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


def worker(task: str, horizon: int | None, plan: str | None = None, episodes: int = 1) -> dict:
    import torch
    import warp as wp
    from bench_envs import warmed_up_env  # this script's folder is first on sys.path

    import physim._src.rollout as rollout
    import physim._src.warp_op as warp_op

    env, actions = warmed_up_env(task, "cpu", horizon)
    u = env.unwrapped
    T = int(actions.shape[0])
    if plan is not None:  # "K/M": checkpoint every K-th state, keep the last M steps' graph
        k_, m_ = (int(v) for v in plan.split("/"))
        u._checkpoint_plan = lambda _T: (k_, m_)

    phase = ["none"]
    totals: dict = defaultdict(float)  # phase -> thread CPU s
    kernels: dict = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))  # phase -> kernel -> [s, launches]
    launch = wp.launch

    def timed_launch(kernel, *args, **kw):
        t = time.thread_time()
        out = launch(kernel, *args, **kw)
        name = getattr(kernel, "key", str(kernel)).split("__")[-1] + (":adj" if kw.get("adjoint") else ":fwd")
        rec = kernels[phase[0]][name]
        rec[0] += time.thread_time() - t
        rec[1] += 1
        return out

    import physim.mpm.backend as backend

    replay = backend.WarpBackend._replay

    def timed_replay(self, key, kernel, dim, inputs, outputs):  # packed commands bypass wp.launch
        t = time.thread_time()
        replay(self, key, kernel, dim, inputs, outputs)
        name = getattr(kernel, "key", str(kernel)).split("__")[-1] + ":fwd"
        rec = kernels[phase[0]][name]
        rec[0] += time.thread_time() - t
        rec[1] += 1

    run_segment = rollout._run_segment
    in_backward = [False]

    def timed_segment(*args, **kw):
        prev = phase[0]
        phase[0] = ("taped recompute" if in_backward[0] else "taped tail") if torch.is_grad_enabled() \
            else "untaped forward"
        t = time.thread_time()
        try:
            return run_segment(*args, **kw)
        finally:
            totals[phase[0]] += time.thread_time() - t
            phase[0] = prev

    grad = torch.autograd.grad

    def timed_grad(*args, **kw):
        prev = phase[0]
        phase[0] = "autograd"
        t = time.thread_time()
        try:
            return grad(*args, **kw)
        finally:
            totals["autograd"] += time.thread_time() - t
            phase[0] = prev

    wbackward = warp_op._WarpFunction.backward

    def timed_wbackward(ctx, *g):
        prev = phase[0]
        phase[0] = "warp backward"
        t = time.thread_time()
        try:
            return wbackward(ctx, *g)
        finally:
            totals["warp backward"] += time.thread_time() - t
            phase[0] = prev

    cbackward = rollout._Checkpointed.backward

    def marked_backward(ctx, *g):
        in_backward[0] = True
        try:
            return cbackward(ctx, *g)
        finally:
            in_backward[0] = False

    with torch.no_grad():
        t = time.thread_time()
        u.rollout_loss(actions)
        fwd = time.thread_time() - t

    patches = [(wp, "launch", timed_launch), (backend.WarpBackend, "_replay", timed_replay),
               (rollout, "_run_segment", timed_segment), (torch.autograd, "grad", timed_grad),
               (warp_op._WarpFunction, "backward", staticmethod(timed_wbackward)),
               (rollout._Checkpointed, "backward", staticmethod(marked_backward))]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, new in patches:
        setattr(owner, name, new)
    results = []
    try:
        for _ in range(episodes):
            totals.clear()
            kernels.clear()
            a = actions.clone().requires_grad_(True)
            t = time.thread_time()
            u.rollout_loss(a).backward()
            fb = time.thread_time() - t
            results.append({"fb": fb, "phases": dict(totals), "grad_norm": float(a.grad.norm()),
                            "kernels": {p: dict(ks) for p, ks in kernels.items()}})
    finally:
        for owner, name, orig in originals:
            setattr(owner, name, orig)
    k, keep = u._checkpoint_plan(T)
    return {"task": task, "horizon": T, "K": k, "kept": keep, "fwd": fwd, "episodes": results,
            "load": os.getloadavg()}


def report(r: dict, e: dict, i: int) -> None:
    fwd, fb, ph = r["fwd"], e["fb"], e["phases"]
    print(f"\n{r['task']}: {r['horizon']} steps, K {r['K']} / kept {r['kept']}; episode {i + 1}; "
          f"load {r['load'][0]:.2f}; grad norm {e['grad_norm']:.6g}")
    print(f"forward (no_grad) {fwd:.2f} s; forward+backward {fb:.2f} s; ratio {fb / fwd:.2f}")
    # without checkpointing (K None) the whole graph is the "tail" and backward is one `loss.backward()`
    # outside the wrapped `autograd.grad`: its torch part then lands in "other"
    checkpointed = "autograd" in ph
    autograd_rest = ph["autograd"] - ph.get("warp backward", 0.0) if checkpointed else 0.0
    rows = [(p, ph.get(p, 0.0)) for p in ("untaped forward", "taped tail", "taped recompute", "warp backward")]
    rows.append(("autograd outside warp", autograd_rest))
    inside = ("untaped forward", "taped tail", "taped recompute", "autograd" if checkpointed else "warp backward")
    rows.append(("other (outside the phases)", fb - sum(ph.get(p, 0.0) for p in inside)))
    print("| phase | CPU s | × forward | of which Warp launches s | python/torch s |")
    print("|---|---|---|---|---|")
    for p, s in rows:
        ks = e["kernels"].get(p, {})
        kt = sum(v[0] for v in ks.values())
        print(f"| {p} | {s:.2f} | {s / fwd:.2f} | {kt:.2f} | {s - kt:.2f} |")
    for p in ("untaped forward", "taped tail", "taped recompute", "warp backward"):
        ks = sorted(e["kernels"].get(p, {}).items(), key=lambda e: -e[1][0])
        print(f"  {p}: " + ", ".join(f"{n} {v[0]:.2f} ({v[1]})" for n, v in ks[:10]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["LatteArt", "Stabilizing"])
    ap.add_argument("--horizon", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plan", default=None, help="K/M: force the checkpoint plan (default: the env's)")
    ap.add_argument("--episodes", type=int, default=1, help="forward+backward episodes profiled in turn")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.horizon, args.plan, args.episodes)))
        return 0
    out = []
    for task in args.tasks:
        cmd = [sys.executable, __file__, "--worker", task, "--episodes", str(args.episodes)]
        cmd += (["--horizon", str(args.horizon)] if args.horizon else []) + (["--plan", args.plan] if args.plan else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if res.returncode != 0:
            print(f"{task}: failed: {res.stderr.strip()[-2000:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        out.append(r)
        for i, e in enumerate(r["episodes"]):
            report(r, e, i)
    if args.json is not None:
        from physim.io.atomic import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
