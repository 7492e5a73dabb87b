"""Benchmark: GIOROM on 1/8, 1/16, 1/32 sparse graphs vs the GNS baseline on the dense graph.

Purpose: the issue's benchmark, in one run on one machine. Every model trains on the same
MPM dataset with the same wall-time budget and the same training loop; then, on the same
test trajectories:

- rollout MSE [m²] per material over `--steps` steps (GIOROM decoded at every dense particle);
- time per rollout step: GNS on the dense graph vs GIOROM's sparse step (and sparse step +
  dense decoding), median of interleaved repeats on the largest test scene, as ratios;
- the decoder's time for 1k, 10k and 100k query points from a 1k-point sparse graph (with
  the per-rollout neighbourhood plan cached: torch sparse product and Warp kernel, interleaved;
  and the plan build alone), as ratios to 1k.

Command (what docs/benchmarks.md reports):

    physim data mpm --preset cpu-2d --out data/mpm-cpu-2d --workers 2
    python scripts/bench_giorom.py --data data/mpm-cpu-2d --budget 720 --out out/bench_giorom_cpu \
        --timing-sizes 2000 8000 --timing-repeats 3 --timing-steps 5

Speed and accuracy on the same test scenes (5.8-13.4k particles; about 45 minutes):

    physim data mpm --preset cpu-2d-dense --out data/mpm-cpu-2d-dense --workers 2
    python scripts/bench_giorom.py --data data/mpm-cpu-2d-dense --budget 1200 --out out/bench_giorom_dense \
        --timing-sizes 8000 16000 --timing-repeats 3 --timing-steps 5 --timing-all-test

The decoder timing alone (no dataset, about a minute):

    python scripts/bench_giorom.py --only decoder --out out/bench_giorom_decoder

Outputs: a table on stdout, `<out>/results.json`, `<out>/table.md`, and a video per
material and model in `<out>/videos/`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import tyro
from physim.operators import load
from physim.operators.giorom import GIOROM
from physim.operators.gns import GNS
from physim.operators.lagrangian import load_split
from physim.operators.lagrangian.evaluate import evaluate_rollouts, summarize
from physim.operators.lagrangian.features import particle_spacing
from physim.operators.lagrangian.train import train_lagrangian
from physim.operators.lagrangian.video import write_comparison_video
from physim.operators.training import TrainConfig

from physim.io.atomic import atomic_write_text


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """GIOROM vs GNS: same data, same training budget, one run."""

    data: Path = Path("data/mpm-cpu-2d")
    """Dataset folder from `physim data mpm`."""
    out: Path = Path("out/bench_giorom")
    """Results, runs and videos."""
    budget: float = 600.0
    """Training wall time per model [s]."""
    steps: int = 100
    """Rollout steps evaluated per test trajectory."""
    sparsity: tuple[float, ...] = (8.0, 16.0, 32.0)
    """GIOROM sparsities (dense particles per sparse particle)."""
    hidden: int = 64
    """Latent width of both models."""
    gns_layers: int = 5
    """GNS message-passing steps."""
    radius_spacings: float = 2.5
    """Dense connectivity radius in particle spacings (GIOROM: times sparsity^(1/dim))."""
    lr: float = 1e-3
    """Peak learning rate of both models (AdamW, cosine decay, warm-up 50 steps)."""
    batch_size: int = 2
    """Scenes per optimizer step."""
    noise_std: float = 3e-4
    """Training noise [m] of both models."""
    timing_repeats: int = 5
    """Interleaved repeats of each timing."""
    timing_steps: int = 10
    """Model steps per timing repeat."""
    threads: int = 1
    """torch CPU threads (the machine is shared: one thread gives steadier ratios)."""
    timing_all_test: bool = False
    """Also time every test scene (not only the largest): speed-ups over the range of scene sizes."""
    timing_sizes: tuple[int, ...] = (2_000, 4_000, 8_000, 12_000)
    """Particle counts of the step-time sweep (lattice blocks at the data's particle spacing)."""
    decoder_queries: tuple[int, ...] = (1_000, 10_000, 100_000)
    """Query counts of the decoder timing."""
    decoder_sparse: int = 1_000
    """Sparse points of the decoder timing."""
    parallel_training: bool = True
    """Train all models at the same time (one process each), so they share the machine's load alike."""
    parallel_evaluation: bool = True
    """Roll the test trajectories out for all models at the same time (one process each)."""
    skip_training: bool = False
    """Reuse the trained models in `out/runs` and their training summaries (evaluate and time only)."""
    seed: int = 0
    """Seed of every run."""
    models: tuple[str, ...] = field(default_factory=tuple)
    """Restrict to these model names (default: gns and every giorom-<s>)."""
    only: Literal["all", "decoder"] = "all"
    """``decoder``: only the decoder timing (an untrained GIOROM; no dataset needed; about a minute)."""
    decoder_dim: int = 2
    """Spatial dimension of the `--only decoder` timing."""
    decoder_repeats: int = 21
    """Interleaved repeats of each decoder timing."""


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class _StepCounter:
    """Trainer callback counting optimizer steps."""

    def __init__(self):
        self.steps = 0

    def on_batch_end(self, trainer, step, loss):
        self.steps = step


def constant_velocity_mse(trajectories, steps: int, history: int = 6) -> dict[str, float]:
    """Reference without learning: x_{t+1} = 2 x_t − x_{t−1} from the same start; MSE [m²] per material."""
    per: dict[str, list[float]] = {}
    for t in trajectories:
        x = t.positions
        n = min(steps, x.shape[0] - history)
        last, prev = x[history - 1], x[history - 2]
        v = last - prev
        pred = last[None] + v[None] * torch.arange(1, n + 1, dtype=x.dtype)[:, None, None]
        per.setdefault(t.material, []).append(float(((pred - x[history: history + n]) ** 2).mean()))
    out = {m: sum(v) / len(v) for m, v in per.items()}
    out["all"] = sum(sum(v) for v in per.values()) / sum(len(v) for v in per.values())
    return out


def build_models(cfg: BenchConfig, dim: int, bounds, radius: float, num_types: int) -> dict:
    models = {"gns": lambda: GNS(dim=dim, radius=radius, bounds=bounds, num_types=num_types, hidden=cfg.hidden,
                                 layers=cfg.gns_layers, noise_std=cfg.noise_std)}
    for s in cfg.sparsity:
        models[f"giorom-{s:g}"] = (lambda s=s: GIOROM(
            dim=dim, radius=radius * s ** (1.0 / dim), sparsity=s, bounds=bounds, num_types=num_types,
            hidden=cfg.hidden, gno_width=cfg.hidden, noise_std=cfg.noise_std))
    if cfg.models:
        models = {k: v for k, v in models.items() if k in cfg.models}
    return models


@torch.no_grad()
def time_steps(models: dict, traj, cfg: BenchConfig) -> dict[str, dict[str, float]]:
    """Median seconds per model step on one scene, interleaving the models in every repeat."""
    out: dict[str, list] = {name: {"step": [], "step+decode": []} for name in models}
    for _ in range(cfg.timing_repeats):
        for name, model in models.items():
            model.eval()
            device = next(model.parameters()).device
            hist = traj.positions[: model.history].transpose(0, 1).to(device)
            ptype = traj.particle_type.to(device)
            if isinstance(model, GIOROM):
                ref = traj.positions[0].to(device)
                idx = model.sample_sparse(ref, generator=torch.Generator().manual_seed(0))
                _sync()
                t0 = time.perf_counter()
                sparse = model.rollout(hist[idx], ptype[idx], cfg.timing_steps)
                _sync()
                t1 = time.perf_counter()
                plan = model.decoder_plan(ref[idx], ref)
                for s in sparse:
                    model.decoder(ref[idx], s - ref[idx], ref, plan=plan)
                _sync()
                t2 = time.perf_counter()
                out[name]["step"].append((t1 - t0) / cfg.timing_steps)
                out[name]["step+decode"].append((t2 - t0) / cfg.timing_steps)
            else:
                _sync()
                t0 = time.perf_counter()
                model.rollout(hist, ptype, cfg.timing_steps)
                _sync()
                dt = (time.perf_counter() - t0) / cfg.timing_steps
                out[name]["step"].append(dt)
                out[name]["step+decode"].append(dt)
    return {name: {k: statistics.median(v) for k, v in d.items()} for name, d in out.items()}


def lattice_scene(count: int, spacing: float, bounds, dim: int, material: int = 0):
    """A resting block of about `count` particles on a lattice of the data's spacing, centred in the
    domain and moving down slowly: a scene with the training data's neighbour counts, for timing."""
    from physim.operators.lagrangian import Trajectory

    side = round(count ** (1.0 / dim))
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    block = torch.cartesian_prod(*([axis] * dim)).reshape(-1, dim)
    lo, hi = torch.tensor(bounds[0]), torch.tensor(bounds[1])
    if bool(((block.max(0).values - block.min(0).values) > (hi - lo)).any()):
        raise ValueError(f"timing_sizes: {count} particles at spacing {spacing:.4g} m do not fit in the domain")
    block = block + (lo + hi) / 2
    fall = torch.zeros(dim)
    fall[1] = -1e-3
    positions = torch.stack([block + fall * t for t in range(8)])
    return Trajectory(positions=positions, particle_type=torch.full((block.shape[0],), material),
                      material="lattice", name=f"lattice_{block.shape[0]}")


@torch.no_grad()
@torch.no_grad()
def time_decoder(model: GIOROM, cfg: BenchConfig) -> list[dict[str, float]]:
    """Decoder time for each query count from a `decoder_sparse`-point graph (a disc/ball body).

    Inference (no gradient), as in a rollout. For each query count: the decode with the plan cached
    (the plan is built once per rollout) by the torch sparse product and by the Warp kernel, and
    the plan build itself (neighbour search + matrix). Repeats are interleaved over the query
    counts and the two paths; medians of the thread CPU time (one torch thread; Warp's CPU kernels
    run on the calling thread) and of the wall time.
    """
    dim = model.dim
    gen = torch.Generator().manual_seed(cfg.seed)
    n_dense = max(cfg.decoder_queries)

    def body(n):  # uniform points in a ball of radius 0.2 around the domain centre
        x = torch.randn(n, dim, generator=gen)
        x = x / torch.linalg.vector_norm(x, dim=1, keepdim=True) * torch.rand(n, 1, generator=gen) ** (1 / dim)
        return 0.5 + 0.2 * x

    device = next(model.parameters()).device
    dense = body(n_dense).to(device)
    sparse_ref = dense[torch.randperm(n_dense, generator=gen)[: cfg.decoder_sparse]]
    values = 0.01 * torch.sin(7 * sparse_ref)  # some deformation
    dec = model.decoder
    plans = {q: dec.plan(sparse_ref, dense[:q]) for q in cfg.decoder_queries}
    for q in cfg.decoder_queries:  # warm-up (and the kernel's compilation) before any timing
        for backend in ("torch", "warp"):
            dec(sparse_ref, values, dense[:q], plan=plans[q], backend=backend)
    samples = {(q, k): ([], []) for q in cfg.decoder_queries for k in ("torch", "warp", "plan")}

    def timed(key, fn):
        _sync()
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        _sync()
        samples[key][0].append(time.thread_time() - c0)
        samples[key][1].append(time.perf_counter() - w0)

    for rep in range(cfg.decoder_repeats):
        for q in cfg.decoder_queries:
            queries, plan = dense[:q], plans[q]
            pair = ("torch", "warp") if rep % 2 == 0 else ("warp", "torch")
            for backend in pair:
                timed((q, backend), lambda b=backend, x=queries, p=plan: dec(sparse_ref, values, x, plan=p, backend=b))
            if rep < cfg.timing_repeats:
                timed((q, "plan"), lambda x=queries: dec.plan(sparse_ref, x))
    rows = []
    for q in cfg.decoder_queries:
        row = {"queries": q}
        for k in ("torch", "warp", "plan"):
            row[f"cpu_{k}"] = statistics.median(samples[(q, k)][0])
            row[f"wall_{k}"] = statistics.median(samples[(q, k)][1])
        rows.append(row)
    for r in rows:
        for k in ("torch", "warp", "plan"):
            r[f"ratio_cpu_{k}"] = r[f"cpu_{k}"] / rows[0][f"cpu_{k}"]
            r[f"ratio_wall_{k}"] = r[f"wall_{k}"] / rows[0][f"wall_{k}"]
    return rows


def decoder_table(rows: list[dict[str, float]]) -> str:
    """The decoder timing as a markdown table (thread CPU time; wall time in brackets)."""
    lines = ["| queries (from a 1k-point graph) | decode, torch product [ms] | / 1k | decode, Warp kernel [ms] | "
             "/ 1k | torch / kernel | plan build [ms] | / 1k |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['queries']:,} | {1e3 * r['cpu_torch']:.2f} ({1e3 * r['wall_torch']:.2f}) | "
                     f"{r['ratio_cpu_torch']:.2f} | {1e3 * r['cpu_warp']:.2f} ({1e3 * r['wall_warp']:.2f}) | "
                     f"{r['ratio_cpu_warp']:.2f} | {r['cpu_torch'] / r['cpu_warp']:.2f} | "
                     f"{1e3 * r['cpu_plan']:.1f} ({1e3 * r['wall_plan']:.1f}) | {r['ratio_cpu_plan']:.1f} |")
    return "\n".join(lines)


def decoder_only(cfg: BenchConfig) -> list[dict[str, float]]:
    """`--only decoder`: the decoder timing alone, with an untrained GIOROM (the decoder's cost does
    not depend on its weights; its heads get random values so that every term is non-zero)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dim = cfg.decoder_dim
    model = GIOROM(dim=dim, radius=0.05, sparsity=8.0, bounds=[[0.0] * dim, [1.0] * dim], num_types=5,
                   hidden=cfg.hidden, gno_width=cfg.hidden).eval()
    for head in (model.decoder.head_c, model.decoder.head_b, model.decoder.head_s):
        torch.nn.init.normal_(head.weight, std=0.1)
    rows = time_decoder(model, cfg)
    table = decoder_table(rows)
    load = os.getloadavg()
    header = (f"decoder timing: dim {dim}, {cfg.decoder_sparse} sparse points, {cfg.decoder_repeats} interleaved "
              f"repeats, torch threads {torch.get_num_threads()}, load average {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f} (at the end)")
    print(header)
    print(table)
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.out / "decoder.json", json.dumps({"rows": rows, "header": header}, indent=2))
    atomic_write_text(cfg.out / "decoder.md", header + "\n\n" + table + "\n")
    return rows


def _data(cfg: BenchConfig):
    splits = {s: load_split(cfg.data, s) for s in ("train", "valid", "test")}
    train, valid, test = ([t for f in splits[s] for t in f.trajectories] for s in ("train", "valid", "test"))
    meta = splits["train"][0]
    spacing = particle_spacing([t.positions[0] for t in train])
    builders = build_models(cfg, meta.dim, meta.bounds.tolist(), cfg.radius_spacings * spacing, len(meta.materials))
    return train, valid, test, meta, spacing, builders


def train_one(cfg: BenchConfig, name: str) -> dict:
    """Train model `name` on the dataset within the budget (also in a worker process); a summary row."""
    torch.set_num_threads(cfg.threads)
    train, valid, _, _, _, builders = _data(cfg)
    torch.manual_seed(cfg.seed)
    model = builders[name]()
    # A wall-time budget ends training at an unknown step, so the learning rate stays constant
    # after warm-up (a decay tied to a step count would favour whichever model is faster).
    tcfg = TrainConfig(run_dir=cfg.out / "runs" / name, epochs=100_000, batch_size=cfg.batch_size,
                       optimizer="adamw", lr=cfg.lr, optimizer_kwargs={"foreach": True}, weight_decay=1e-6,
                       schedule="constant", warmup_steps=50, grad_clip=1.0, max_wall_time=cfg.budget, seed=cfg.seed,
                       log="csv", progress=False)
    counter = _StepCounter()
    cpu0 = time.process_time()
    result = train_lagrangian(model, train, valid, tcfg, valid_steps=20, valid_trajectories=4, callbacks=[counter])
    row = {"optimizer_steps": counter.steps, "epochs": len(result.history), "wall_time": result.wall_time,
           "cpu_time": time.process_time() - cpu0, "best_epoch": result.best_epoch,
           "best_valid_rollout_mse": result.best_valid_loss, "budget": cfg.budget,
           "parameters": sum(p.numel() for p in model.parameters())}
    # Kept beside the weights, so that `--skip-training` reports the training that produced them.
    atomic_write_text(tcfg.run_dir / "bench_training.json", json.dumps(row, indent=2))
    return row


def evaluate_one(cfg: BenchConfig, name: str) -> dict:
    """Roll every test trajectory out with the trained model `name` (also in a worker process),
    write one video per material; the MSE summary per material."""
    torch.set_num_threads(cfg.threads)
    _, _, test, meta, _, _ = _data(cfg)
    model = load(cfg.out / "runs" / name / "best.pt")
    results = evaluate_rollouts(model, test, steps=cfg.steps, keep=True)
    shown = set()
    for r in results:
        if r.material not in shown:
            shown.add(r.material)
            write_comparison_video(cfg.out / "videos" / f"{r.material}_{name}.gif", r.truth, r.prediction,
                                   bounds=meta.bounds.tolist(),
                                   title=f"{name}: {r.material} ({r.name}), {r.steps} steps")
    return summarize(results)


def _map(fn, cfg: BenchConfig, names: list[str], parallel: bool) -> dict:
    """{name: fn(cfg, name)}, one spawned process per name when `parallel`."""
    if not parallel or len(names) < 2:
        return {name: fn(cfg, name) for name in names}
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=len(names), mp_context=get_context("spawn")) as pool:
        return dict(zip(names, pool.map(fn, [cfg] * len(names), names)))


def main(cfg: BenchConfig) -> dict:
    if cfg.only == "decoder":
        return {"decoder": decoder_only(cfg)}
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    _, _, test, meta, spacing, builders = _data(cfg)
    bounds = meta.bounds.tolist()
    radius = cfg.radius_spacings * spacing
    names = list(builders)
    if not cfg.skip_training:
        # All models train at the same time, so they share the machine's (noisy) load equally.
        training = _map(train_one, cfg, names, cfg.parallel_training)
    else:
        found = {n: cfg.out / "runs" / n / "bench_training.json" for n in names}
        training = {n: json.loads(f.read_text()) for n, f in found.items() if f.is_file()}
    for name, row in training.items():
        print(f"trained {name}: {row['optimizer_steps']} optimizer steps ({row['epochs']} epochs) in "
              f"{row['wall_time']:.0f} s wall, {row['cpu_time']:.0f} s CPU; best valid 20-step MSE "
              f"{row['best_valid_rollout_mse']:.3e} m²", flush=True)
    trained = {name: load(cfg.out / "runs" / name / "best.pt") for name in names}
    evaluation = _map(evaluate_one, cfg, names, cfg.parallel_evaluation)

    reference = constant_velocity_mse(test, cfg.steps)
    largest = max(test, key=lambda t: t.particle_count)
    timing = time_steps(trained, largest, cfg)
    # Every other test scene too, so the speed-up is reported over the whole range of scene sizes
    # the MSE is measured on, not only at the largest.
    per_scene = [{"scene": largest.name, "particles": largest.particle_count, **timing}]
    if cfg.timing_all_test:
        for traj in sorted(test, key=lambda t: t.particle_count):
            if traj is not largest:
                per_scene.append({"scene": traj.name, "particles": traj.particle_count,
                                  **time_steps(trained, traj, cfg)})
        per_scene.sort(key=lambda r: r["particles"])
    sweep = []
    for count in cfg.timing_sizes:
        scene = lattice_scene(count, spacing, bounds, meta.dim)
        t = time_steps(trained, scene, cfg)
        sweep.append({"particles": scene.particle_count, **t})
        print(f"timing sweep: {scene.particle_count} particles: "
              + ", ".join(f"{k} {1e3 * v['step']:.1f} ms" for k, v in t.items()), flush=True)
    giorom = next((m for m in trained.values() if isinstance(m, GIOROM)), None)
    decoder = time_decoder(giorom, cfg) if giorom is not None else []
    other = [n for n in trained if n != "gns"]
    scene_lines = []
    if len(per_scene) > 1 and "gns" in trained:
        scene_lines = ["", "| test scene | particles | GNS step [ms] | " + " | ".join(
            f"GNS / {n} step | GNS / {n} step+decode" for n in other) + " |", "|---|---|---|" + "---|---|" * len(other)]
        for r in per_scene:
            g = r["gns"]["step"]
            scene_lines.append(f"| {r['scene']} | {r['particles']:,} | {1e3 * g:.1f} | " + " | ".join(
                f"{g / r[n]['step']:.1f}× | {g / r[n]['step+decode']:.1f}×" for n in other) + " |")

    materials = [*sorted({k for e in evaluation.values() for k in e if k != "all"}), "all"]
    lines = ["| model | stepped particles | " + " | ".join(f"MSE {m} [m²]" for m in materials)
             + " | MSE / GNS (all) | step [ms] | GNS step / step | step+decode [ms] | GNS step / (step+decode) |",
             "|---" * (len(materials) + 7) + "|"]
    gns_all = evaluation.get("gns", {}).get("all", {}).get("mse")
    gns_t = timing.get("gns", {}).get("step")
    for name in trained:
        e, t = evaluation[name], timing[name]
        stepped = (trained[name].sparse_count(largest.particle_count) if isinstance(trained[name], GIOROM)
                   else largest.particle_count)
        row = [name, f"{stepped} of {largest.particle_count}"]
        row += [f"{e[m]['mse']:.2e}" if m in e else "–" for m in materials]
        row.append(f"{e['all']['mse'] / gns_all:.2f}" if gns_all else "–")
        row += [f"{1e3 * t['step']:.1f}", f"{gns_t / t['step']:.1f}" if gns_t else "–",
                f"{1e3 * t['step+decode']:.1f}", f"{gns_t / t['step+decode']:.1f}" if gns_t else "–"]
        lines.append("| " + " | ".join(row) + " |")
    if sweep and "gns" in trained:
        names = [n for n in trained if n != "gns"]
        lines += ["", "| particles | GNS step [ms] | " + " | ".join(f"{n} step [ms] (GNS / {n}) | "
                                                          f"{n} step+decode [ms] (GNS / ...)" for n in names) + " |",
                  "|---|---|" + "---|---|" * len(names)]
        for row in sweep:
            g = row["gns"]["step"]
            cells = [f"{row['particles']:,}", f"{1e3 * g:.1f}"]
            for n in names:
                cells += [f"{1e3 * row[n]['step']:.1f} ({g / row[n]['step']:.1f}×)",
                          f"{1e3 * row[n]['step+decode']:.1f} ({g / row[n]['step+decode']:.1f}×)"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += scene_lines
    if decoder:
        lines += ["", decoder_table(decoder)]
    row = ["constant velocity (no model)", "–"] + [f"{reference[m]:.2e}" if m in reference else "–"
                                                   for m in materials]
    row += [f"{reference['all'] / gns_all:.2f}" if gns_all else "–", "–", "–", "–", "–"]
    lines.insert(2 + len(trained), "| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print(table)
    results = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
               "radius": radius, "spacing": spacing, "training": training, "evaluation": evaluation,
               "constant_velocity": reference,
               "timing_scene": {"name": largest.name, "particles": largest.particle_count}, "timing": timing,
               "timing_sweep": sweep, "timing_test_scenes": per_scene,
               "decoder": decoder, "torch_threads": torch.get_num_threads(), "device": "cpu"}
    atomic_write_text(cfg.out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(cfg.out / "table.md", table + "\n")
    return results


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
