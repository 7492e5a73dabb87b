"""Benchmark of physim's MPM: throughput, gradients, memory, and the Taichi mpm3d example.

    .venv/bin/python scripts/bench_mpm.py                 # everything (about 15 minutes on 2 cores)
    .venv/bin/python scripts/bench_mpm.py --only taichi   # just the Taichi comparison

Figures (all in one JSON line at the end, and a table on stdout):

1. Taichi comparison. The installed taichi package's own example
   ``taichi/examples/simulation/mpm3d.py`` is read from the package at run time, switched to
   ``arch=ti.cpu`` and to its 3D 64³ preset (65,536 particles, dt 2e-4, 25 substeps per frame),
   imported from a temporary file and timed substep by substep. physim runs the same physics
   (weakly compressible fluid whose stress depends on J only: `NewtonianFluid` with K = 400,
   ρ = 1, no viscosity) on the very same particles, grid, dt and substeps, in the same
   process, timed identically (after a warm-up, synchronised, rounds interleaved, median of
   the rounds). The ratio is Taichi time / physim time. physim's elastic (fixed corotated,
   one SVD per particle and substep) throughput on the same particles is reported beside it.
2. Forward throughput [particle-substeps/s] at 64³ with 10k, 100k and 1M particles (float32).
3. Forward + backward (checkpointed rollout, float32, 10k particles at 64³) and the ratio of
   backward time (recomputation included) to forward time.
4. Peak memory of a differentiable rollout (forward + backward) for T = 100 and T = 2000
   substeps with checkpointing (K = 5 steps of 10 substeps), each in its own process.

Warp runs one thread on a CPU; Taichi uses every core. Timings on a shared machine are
noisy: compare ratios, measured in the same process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def load_taichi_example():
    """Import taichi's mpm3d example from the installed package, on the CPU with its 64³ preset."""
    import taichi

    src_path = Path(taichi.__file__).parent / "examples" / "simulation" / "mpm3d.py"
    src = src_path.read_text()
    edits = [
        ("ti.init(arch=ti.gpu)", "ti.init(arch=ti.cpu)"),
        ("\ndim, n_grid, steps, dt = 3, 32, 25, 4e-4", "\n# dim, n_grid, steps, dt = 3, 32, 25, 4e-4"),
        ("# dim, n_grid, steps, dt = 3, 64, 25, 2e-4", "dim, n_grid, steps, dt = 3, 64, 25, 2e-4"),
    ]
    for old, new in edits:
        if old not in src:
            raise RuntimeError(f"{src_path}: expected line {old.strip()!r} not found; the example changed")
        src = src.replace(old, new)
    folder = Path(tempfile.mkdtemp(prefix="physim_bench_"))
    path = folder / "taichi_mpm3d_cpu.py"  # Taichi needs kernels in a source file
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("taichi_mpm3d_cpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def time_rounds(fns: dict, rounds: int) -> dict:
    """Median seconds of each callable over interleaved rounds."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def taichi_comparison(substeps: int, rounds: int) -> dict:
    import taichi as ti

    from physim.mpm import Body, Elastic, NewtonianFluid, Particles, SceneConfig, Simulator

    ex = load_taichi_example()
    ex.init()
    x0 = ex.F_x.to_numpy().astype(np.float64)
    n, n_grid, dt = ex.n_particles, ex.n_grid, ex.dt
    dx = 1.0 / n_grid

    def taichi_run():
        for _ in range(substeps):
            ex.substep()
        ti.sync()

    per_step = ex.steps  # 25 substeps per frame, as in the example
    cfg = SceneConfig(dim=3, grid=n_grid, dt=dt, substeps=per_step, boundary="separate", bound=ex.bound,
                      gravity=(0.0, -ex.gravity, 0.0))
    shape = Particles(positions=x0, volume=ex.p_vol)  # the example's p_vol = (dx/2)² (sic), ρ = 1
    fluid = Simulator(cfg, [Body(shape=shape, material=NewtonianFluid(bulk_modulus=float(ex.E), density=ex.p_rho))])
    jelly = Simulator(cfg, [Body(shape=shape, material=Elastic(E=float(ex.E), nu=0.2, density=ex.p_rho))])
    states = {"fluid": fluid.reset(), "elastic": jelly.reset()}

    def physim_run(sim, key):
        def run():
            s = states[key]
            with torch.no_grad():
                for _ in range(substeps // per_step):
                    s = sim.step(s)
            states[key] = s
        return run

    fns = {"taichi": taichi_run, "physim_fluid": physim_run(fluid, "fluid"),
           "physim_elastic": physim_run(jelly, "elastic")}
    time_rounds(fns, 1)  # warm-up: compile, caches
    med = time_rounds(fns, rounds)
    per = {k: v / substeps for k, v in med.items()}
    return {
        "particles": n, "grid": n_grid, "dt": dt, "dx": dx, "substeps_timed": substeps, "rounds": rounds,
        "taichi_ms_per_substep": per["taichi"] * 1e3,
        "physim_fluid_ms_per_substep": per["physim_fluid"] * 1e3,
        "physim_elastic_ms_per_substep": per["physim_elastic"] * 1e3,
        "ratio_fluid_vs_taichi": per["taichi"] / per["physim_fluid"],
        "ratio_elastic_vs_taichi": per["taichi"] / per["physim_elastic"],
        "taichi_threads": ti.lang.impl.current_cfg().cpu_max_num_threads,
        "mean_y_taichi": float(ex.F_x.to_numpy()[:, 1].mean()),
        "mean_y_physim": float(states["fluid"].x[:, 1].mean()),
    }


def box_scene(n: int, *, dtype="float32", substeps=10, material=None):
    from physim.mpm import Body, Elastic, Particles, SceneConfig, Simulator

    rng = np.random.default_rng(0)
    x = 0.1 + 0.8 * rng.random((n, 3))
    vol = 0.8**3 / n
    cfg = SceneConfig(dim=3, grid=64, dt=1e-4, substeps=substeps, dtype=dtype)
    material = material or Elastic(E=1e4, nu=0.3)
    return Simulator(cfg, [Body(shape=Particles(positions=x, volume=vol), material=material)])


def forward_throughput(counts, rounds: int) -> dict:
    out = {}
    for n in counts:
        sim = box_scene(n, substeps=5)
        s = sim.reset()
        with torch.no_grad():
            s = sim.step(s)  # warm-up
            steps = 4 if n <= 100_000 else 1
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                for _ in range(steps):
                    s = sim.step(s)
                times.append(time.perf_counter() - t)
        out[str(n)] = n * steps * sim.cfg.substeps / statistics.median(times)
        print(f"  forward {n:>9,d} particles: {out[str(n)]:.3e} particle-substeps/s", flush=True)
    return out


def forward_backward(n: int, steps: int, k: int, rounds: int) -> dict:
    sim = box_scene(n, substeps=10)
    sim.params["body0.E"].requires_grad_(True)
    fwd, bwd = [], []
    for r in range(rounds + 1):
        s0 = sim.reset()
        v0 = s0.v.clone().requires_grad_(True)
        s0 = sim.reset(v=v0)
        t = time.perf_counter()
        out = sim.rollout(s0, steps=steps, checkpoint_every=k)
        t1 = time.perf_counter()
        out.state.x.square().sum().backward()
        t2 = time.perf_counter()
        if r:  # round 0 compiles
            fwd.append(t1 - t)
            bwd.append(t2 - t1)
    f, b = statistics.median(fwd), statistics.median(bwd)
    subs = steps * sim.cfg.substeps
    return {"particles": n, "substeps": subs, "checkpoint_every_steps": k, "forward_s": f, "backward_s": b,
            "backward_over_forward": b / f, "fwd_bwd_particle_substeps_per_s": n * subs / (f + b)}


def probe_memory(substeps_total: int, n: int, k: int) -> dict:
    """(Run in a child process.) Peak RSS rise of a checkpointed rollout + backward."""
    from physim._src.memprobe import _reset_peak_rss, _status_kib

    sim = box_scene(n, substeps=10)
    sim.params["body0.E"].requires_grad_(True)
    steps = substeps_total // sim.cfg.substeps
    # warm-up (compile, allocator pools)
    sim.rollout(sim.reset(), steps=1, checkpoint_every=1).state.x.sum().backward()
    _reset_peak_rss()
    base = _status_kib("VmRSS")
    t = time.perf_counter()
    out = sim.rollout(sim.reset(), steps=steps, checkpoint_every=k)
    out.state.x.square().sum().backward()
    secs = time.perf_counter() - t
    return {"substeps": substeps_total, "particles": n, "checkpoint_every_steps": k, "checkpoints": out.checkpoints,
            "peak_bytes": (_status_kib("VmHWM") - base) * 1024, "seconds": secs}


def memory(n: int, k: int) -> dict:
    res = {}
    for total in (100, 2000):
        cmd = [sys.executable, __file__, "--probe-memory", str(total), "--particles", str(n), "--k", str(k)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[str(total)] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  memory T = {total:>4} substeps: {res[str(total)]['peak_bytes'] / 2**20:.1f} MB", flush=True)
    res["ratio_2000_over_100"] = res["2000"]["peak_bytes"] / res["100"]["peak_bytes"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["taichi", "forward", "gradient", "memory"], default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--substeps", type=int, default=100, help="substeps per timed round (Taichi comparison)")
    ap.add_argument("--probe-memory", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--particles", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    import os

    os.environ.setdefault("PHYSIM_DEVICE", "cpu")
    if args.probe_memory is not None:
        print(json.dumps(probe_memory(args.probe_memory, args.particles, args.k)))
        return
    from physim.runtime import device

    report = {"device": str(device()), "torch_threads": torch.get_num_threads()}
    if args.only in (None, "taichi"):
        print("Taichi mpm3d example (64³, 65,536 particles) vs physim, same process:", flush=True)
        r = taichi_comparison(args.substeps, args.rounds)
        report["taichi"] = r
        print(f"  taichi {r['taichi_ms_per_substep']:.2f} ms/substep ({r['taichi_threads']} threads); physim fluid "
              f"{r['physim_fluid_ms_per_substep']:.2f} ms (1 thread) -> ratio {r['ratio_fluid_vs_taichi']:.2f}x; "
              f"physim elastic {r['physim_elastic_ms_per_substep']:.2f} ms -> {r['ratio_elastic_vs_taichi']:.2f}x",
              flush=True)
    if args.only in (None, "forward"):
        print("Forward throughput at 64³ (float32, elastic):", flush=True)
        report["forward_particle_substeps_per_s"] = forward_throughput([10_000, 100_000, 1_000_000], args.rounds)
    if args.only in (None, "gradient"):
        print("Forward + backward (10k particles, 64³, 20 steps x 10 substeps, K = 5):", flush=True)
        r = forward_backward(10_000, 20, 5, args.rounds)
        report["gradient"] = r
        print(f"  forward {r['forward_s']:.2f} s, backward {r['backward_s']:.2f} s "
              f"(ratio {r['backward_over_forward']:.2f}); {r['fwd_bwd_particle_substeps_per_s']:.3e} "
              "particle-substeps/s", flush=True)
    if args.only in (None, "memory"):
        print("Peak memory of a checkpointed rollout + backward (10k particles, 64³, K = 5 steps):", flush=True)
        report["memory"] = memory(10_000, 5)
        print(f"  ratio T=2000 / T=100: {report['memory']['ratio_2000_over_100']:.2f}", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
