"""Benchmark of the fluid environments: env steps/s, forward and forward+backward time of rollout_loss, peak memory.

    .venv/bin/python scripts/bench_envs.py                                  # every task, cpu quality, full horizons
    .venv/bin/python scripts/bench_envs.py --tasks Pouring LatteArt --horizon 100
    .venv/bin/python scripts/bench_envs.py --tasks LatteArt --repeat         # and a second episode per task

Per task, in its own process (so that peaks do not mix), at the given quality:

- **gym steps/s**: ``env.step`` over one episode with the task's scripted actions (no rendering);
- **forward**: ``rollout_loss(actions)`` under ``torch.no_grad`` (the functional path, the baseline);
- **forward+backward**: ``rollout_loss(actions).backward()`` with the env's automatic checkpoint
  plan (store all when the graph fits 1 GiB, else every K-th step, and the last M steps' graph
  recorded by the forward pass; the K column shows "K / M"), and its ratio to the forward time
  measured in the same process;
- **full episode**: the forward and forward+backward CPU time of one whole episode (the
  issue's targets: ≤ 60 s forward on 2 cores, fwd+bwd ≤ 4× that); with ``--horizon`` shorter
  than a task's, scaled linearly from the steps measured and marked "≈" (the per-step cost
  of emitter tasks grows as material is released, and checkpointing may differ at full length);
- **peak memory**: rise of the process's peak resident set (VmHWM, reset before the phase) during
  forward+backward.

Times are given as wall time and as the process's CPU time (every thread): on a shared
machine the wall time carries the load of other processes, the CPU time much less so. The
scripted actions are the demo of each task (zeros where a task has none); the Warp/Taichi
kernels are compiled and the goal trajectories recorded before anything is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def _reset_peak() -> int:
    """Reset VmHWM to the current resident set (Linux); return the current RSS in bytes."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_kib("VmRSS") * 1024


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    return time.perf_counter() - t[0], time.process_time() - t[1]


def warmed_up_env(task: str, quality: str, horizon: int | None):
    """The task's env, reset with seed 0, its demo actions, and both paths' kernels compiled.

    The warm-up compiles the kernels of both paths on a short horizon and runs the checkpointed
    backward once (its first `torch.autograd.grad` imports torch's symbolic-shape machinery, a
    one-off 0.4 s that would otherwise land in the timed forward+backward). Also used by
    `bench_material_adjoints.py`.

    Returns:
        (env, actions): the gymnasium env and the demo actions, shape (T, action_dim).
    """
    import gymnasium as gym
    import physim.envs  # noqa: F401
    import torch
    from physim.envs.fluid.registry import env_id

    torch.set_num_threads(1)
    kw = {"quality": quality} if horizon is None else {"quality": quality, "horizon": horizon}
    env = gym.make(env_id(task), **kw)
    u = env.unwrapped
    env.reset(seed=0)  # records the goal (shape-matching tasks)
    actions = torch.as_tensor(u.demo_actions())
    a = actions[:2].clone().requires_grad_(True)
    u.rollout_loss(a).backward()
    if getattr(u, "checkpoint_every", None) is not None:
        plan, u.checkpoint_every = u.checkpoint_every, 1
        a = actions[:2].clone().requires_grad_(True)
        u.rollout_loss(a).backward()
        u.checkpoint_every = plan
    return env, actions


def worker(task: str, quality: str, horizon: int | None, repeat: bool = False) -> dict:
    import torch

    env, actions = warmed_up_env(task, quality, horizon)
    u = env.unwrapped
    T = actions.shape[0]

    env.reset(seed=0)
    t = _clock()
    for k in range(T):
        env.step(actions[k].numpy())
    gym_wall, gym_cpu = _since(t)

    with torch.no_grad():
        t = _clock()
        loss = float(u.rollout_loss(actions))
        fwd_wall, fwd_cpu = _since(t)

    base = _reset_peak()
    a = actions.clone().requires_grad_(True)
    t = _clock()
    out = u.rollout_loss(a)
    out.backward()
    fb_wall, fb_cpu = _since(t)
    peak = _status_kib("VmHWM") * 1024 - base
    again = {}
    if repeat:  # a second episode, as in a trajectory optimisation loop: the taped arrays are recycled
        with torch.no_grad():
            t = _clock()
            u.rollout_loss(actions)
            again["fwd2_cpu"] = _since(t)[1]
        a = actions.clone().requires_grad_(True)
        t = _clock()
        u.rollout_loss(a).backward()
        again["fb2_cpu"] = _since(t)[1]
    return {**again, "task": task, "quality": quality, "horizon": T, "substeps": getattr(u._task.spec, "substeps", 1),
            "particles": getattr(getattr(u._task, "sim", None), "particle_count", 0),
            "checkpoint_every": u._checkpoint_plan(T)[0], "kept_steps": u._checkpoint_plan(T)[1],
            "loss": loss, "grad_norm": float(a.grad.norm()),
            "gym_wall": gym_wall, "gym_cpu": gym_cpu, "fwd_wall": fwd_wall, "fwd_cpu": fwd_cpu,
            "fb_wall": fb_wall, "fb_cpu": fb_cpu, "peak_bytes": int(peak)}


def main(argv: list[str] | None = None) -> int:
    from physim.envs.fluid.registry import HORIZONS, TASKS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--quality", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--horizon", type=int, default=None, help="control steps (default: each task's horizon)")
    ap.add_argument("--json", type=Path, default=Path("out/bench_envs.json"))
    ap.add_argument("--repeat", action="store_true",
                    help="also time a second forward and forward+backward episode in the same process "
                         "(the steady state of an optimisation loop; printed after the table row)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.quality, args.horizon, args.repeat)))
        return 0
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        ap.error(f"unknown task {unknown[0]!r}: expected some of {', '.join(TASKS)}")
    rows = []
    print("| task | steps (substeps) | particles | gym steps/s wall (cpu) | forward s wall (cpu) "
          "| fwd+bwd s wall (cpu) | fwd+bwd / fwd (cpu) | K / kept | peak MB | full horizon | full episode fwd, "
          "fwd+bwd cpu s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for task in args.tasks:
        cmd = [sys.executable, __file__, "--worker", task, "--quality", args.quality]
        if args.horizon is not None:
            cmd += ["--horizon", str(args.horizon)]
        if args.repeat:
            cmd.append("--repeat")
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if res.returncode != 0:
            print(f"| {task} | failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else '?'} |",
                  flush=True)
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(r)
        T = r["horizon"]
        full = HORIZONS[task]
        # measured over the whole horizon, or scaled linearly from the T steps measured (marked "≈")
        scale, mark = full / T, ("" if T == full else "≈ ")
        full_episode = f"{mark}{r['fwd_cpu'] * scale:.1f}, {mark}{r['fb_cpu'] * scale:.1f}"
        print(f"| {task} | {T} ({r['substeps']}) | {r['particles']} | {T / r['gym_wall']:.0f} ({T / r['gym_cpu']:.0f}) "
              f"| {r['fwd_wall']:.1f} ({r['fwd_cpu']:.1f}) | {r['fb_wall']:.1f} ({r['fb_cpu']:.1f}) "
              f"| {r['fb_cpu'] / r['fwd_cpu']:.2f} | {r['checkpoint_every'] or 'all'}"
              f"{' / ' + str(r['kept_steps']) if r.get('kept_steps') else ''} | {r['peak_bytes'] / 1e6:.0f} "
              f"| {full} | {full_episode} |", flush=True)
        if "fb2_cpu" in r:
            print(f"|   {task}, second episode | | | | ({r['fwd2_cpu']:.1f}) | ({r['fb2_cpu']:.1f}) "
                  f"| {r['fb2_cpu'] / r['fwd2_cpu']:.2f} | | | | |", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from physim.io.atomic import atomic_write_text

    atomic_write_text(args.json, json.dumps({"rows": rows, "load_average": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
