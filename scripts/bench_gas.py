"""Benchmark of the gas grid: speed forward and forward+backward, memory versus K, Jacobi versus CG.

Every figure is a ratio against a baseline measured in the same run:

- speed: control steps per second of `GasSimulator.step` (forward, no graph) and of a
  differentiable rollout plus its backward pass (loss on a smoke slice, gradients for
  every step's fan action) with K = 10 and without checkpointing, for FluidLab's
  Circulation grid at ``cpu`` quality (the 32³ cube with its solid slab mask, and the
  equivalent 32 × 2 × 32 slab grid) and a larger 64³ buoyant plume; baseline: the
  forward pass of the same grid.
- memory: peak resident memory (CPU) or peak torch allocation (GPU) of a 100-step
  differentiable rollout and its backward pass versus the checkpoint interval K, each
  in its own process; baseline: storing every step (K = none).
- solvers: time of one projection of a smooth random velocity field on 48³ cells, and
  the fraction of its divergence left, for Jacobi (50 sweeps, FluidLab's Circulation;
  500, FluidLab's default) and CG; baseline: 50 Jacobi sweeps.

    .venv/bin/python scripts/bench_gas.py                 # everything, writes the tables to stdout
    .venv/bin/python scripts/bench_gas.py --what speed --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from physim.gas import FanConfig, GasConfig, GasSimulator, circulation_config, circulation_solid, divergence


def _plume(n: int, **kw) -> GasConfig:
    fan = FanConfig(center=(0.5, 0.15, 0.5), direction=(0.0, 1.0, 0.0), strength=8.0, radius=0.06, mix=0.5)
    settings = {"dt": 0.03, "buoyancy": 2.0, "jacobi_iterations": 50, "jacobi_omega": 1.0, "fans": (fan,), **kw}
    return GasConfig(resolution=(n, n, n), cell_size=1.0 / n, **settings)


def _grids() -> dict[str, tuple[GasConfig, torch.Tensor | None]]:
    cube = circulation_config("cpu")
    return {
        "circulation cpu, 32³ cube + slab mask": (cube, circulation_solid(cube)),
        "circulation cpu, 32×2×32 slab grid": (circulation_config("cpu", slab=True), None),
        "plume 64³ (larger grid)": (_plume(64), None),
    }


def _start(sim: GasSimulator):
    smoke = torch.ones(*sim.cfg.resolution, 1, dtype=sim.dtype)
    return sim.reset(smoke=smoke)


def _loss_slice(sim: GasSimulator, state) -> torch.Tensor:
    ys = max(1, sim.cfg.resolution[1] // 2)
    return state.smoke[::4, ys - 1 : ys + 1, ::4].sum() + state.velocity[::4, ys - 1 : ys + 1, ::4].pow(2).sum()


def _forward_backward(sim: GasSimulator, s0, actions: torch.Tensor, k: int | None) -> float:
    """Seconds of a differentiable rollout with checkpoint interval k and its backward pass."""
    a = actions.clone().requires_grad_(True)
    t0 = time.perf_counter()
    out = sim.rollout(s0, a, checkpoint_every=k)
    _loss_slice(sim, out.state).backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())
    return time.perf_counter() - t0


def bench_speed(steps: int, repeats: int) -> None:
    print(f"\n### Speed ({steps} control steps, best of {repeats})\n")
    print("| grid | cells | forward [steps/s] | fwd+bwd, K = 10 [steps/s] | ratio to forward "
          "| fwd+bwd, K = none [steps/s] | ratio to forward |")
    print("|---|---|---|---|---|---|---|")
    for name, (cfg, solid) in _grids().items():
        sim = GasSimulator(cfg, solid=solid)
        s0 = _start(sim)
        actions = sim.default_action().expand(steps, -1, -1).clone()
        sim.step(s0, actions[0])  # compile the forward kernels
        out = sim.rollout(s0, actions[:2].clone().requires_grad_(True))
        _loss_slice(sim, out.state).backward()  # compile the backward kernels

        fwd, fb10, fb = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                s = s0
                for a in actions:
                    s = sim.step(s, a)
            fwd.append(time.perf_counter() - t0)
            fb10.append(_forward_backward(sim, s0, actions, 10))
            fb.append(_forward_backward(sim, s0, actions, None))
        tf, t10, tn = min(fwd), min(fb10), min(fb)
        cells = 1
        for n in cfg.resolution:
            cells *= n
        print(f"| {name} | {cells} | {steps / tf:.1f} | {steps / t10:.1f} | {t10 / tf:.2f} | {steps / tn:.1f} | "
              f"{tn / tf:.2f} |", flush=True)


def probe_memory(k: int, steps: int) -> dict:
    """One memory measurement (run in its own process by `bench_memory`)."""
    from physim._src.memprobe import peak_memory

    sim = GasSimulator(_plume(32))
    s0 = _start(sim)
    actions = sim.default_action().expand(steps, -1, -1).clone()

    def run(n: int) -> int:
        a = actions[:n].clone().requires_grad_(True)
        out = sim.rollout(s0, a, checkpoint_every=k or None)
        _loss_slice(sim, out.state).backward()
        return out.checkpoints

    run(2)
    stored, peak, seconds = peak_memory(lambda: run(steps), cuda=sim.device.type == "cuda")
    return {"k": k, "checkpoints": stored, "peak_bytes": peak, "seconds": seconds, "device": str(sim.device)}


def bench_memory(steps: int, ks: list[int]) -> None:
    print(f"\n### Memory versus checkpoint interval K ({steps}-step differentiable rollout, plume 32³)\n")
    print("| K | stored states | peak memory [MB] | memory / baseline | time [s] | time / baseline |")
    print("|---|---|---|---|---|---|")
    rows = []
    for k in ks:
        cmd = [sys.executable, __file__, "--probe-memory", str(k), "--steps", str(steps)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    base = next(r for r in rows if r["k"] == 0)
    for r in rows:
        mem, sec = r["peak_bytes"], r["seconds"]
        print(f"| {r['k'] or 'none'} | {r['checkpoints']} | {mem / 1e6:.1f} | {mem / base['peak_bytes']:.3f} | "
              f"{sec:.2f} | {sec / base['seconds']:.2f} |", flush=True)


def bench_solvers(repeats: int) -> None:
    print(f"\n### Pressure solvers (projection of a smooth random field on 48³ cells, best of {repeats})\n")
    print("| solver | dtype | time per projection [ms] | time / Jacobi-50 | ‖div Pv‖ / ‖div v‖ |")
    print("|---|---|---|---|---|")
    variants = {
        "Jacobi, 50 sweeps, ω = 1 (Circulation)": {"jacobi_iterations": 50},
        "Jacobi, 500 sweeps, ω = 1 (FluidLab default)": {"jacobi_iterations": 500},
        "Jacobi, 500 sweeps, ω = 0.8": {"jacobi_iterations": 500, "jacobi_omega": 0.8},
        "CG, tolerance 1e-3": {"solver": "cg", "cg_tolerance": 1e-3},
        "CG, tolerance 1e-6": {"solver": "cg", "cg_tolerance": 1e-6},
        "CG, tolerance 1e-6, float64": {"solver": "cg", "cg_tolerance": 1e-6, "dtype": "float64"},
    }
    gen = torch.Generator().manual_seed(0)
    v0 = torch.randn(48, 48, 48, 3, generator=gen, dtype=torch.float64)
    for _ in range(4):  # smooth it: the flows that matter are smooth
        v0 = (v0 + v0.roll(1, 0) + v0.roll(1, 1) + v0.roll(1, 2)) / 4
    base = None
    for name, kw in variants.items():
        cfg = _plume(48, warm_start=False, **kw)
        sim = GasSimulator(cfg)
        v = v0.to(sim.dtype)
        sim.project(v)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = sim.project(v)
            times.append(time.perf_counter() - t0)
        t = min(times)
        base = base or t
        v_in = v.double() * sim.open_faces.double()
        reduction = float(divergence(out.double(), cfg.cell_size).norm() / divergence(v_in, cfg.cell_size).norm())
        print(f"| {name} | {cfg.dtype} | {t * 1e3:.1f} | {t / base:.2f} | {reduction:.2e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", nargs="+", default=["speed", "memory", "solvers"],
                    choices=["speed", "memory", "solvers"])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ks", nargs="+", type=int, default=[0, 5, 10, 25], help="0 = no checkpointing (baseline)")
    ap.add_argument("--probe-memory", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe_memory is not None:
        print(json.dumps(probe_memory(a.probe_memory, a.steps)))
        return
    from physim.runtime import cpu_threads, device

    print(f"device {device()}, {cpu_threads()} CPU threads, torch {torch.__version__}")
    if "speed" in a.what:
        bench_speed(min(a.steps, 40), a.repeats)
    if "memory" in a.what:
        bench_memory(a.steps, a.ks)
    if "solvers" in a.what:
        bench_solvers(a.repeats)


if __name__ == "__main__":
    main()
