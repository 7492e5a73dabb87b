"""MPM datasets for learned particle simulators: `physim data mpm` and scripts/gen_mpm_dataset.py.

Runs `physim.mpm` over randomised scenes — one or two bodies of one material (jelly,
plasticine, sand, water or a non-Newtonian fluid), with random shapes, sizes, placements
and initial velocities — and writes HDF5 shards (schema: docs/giorom.md) split into
train/valid/test, plus ``manifest.json``::

    physim data mpm --preset cpu-2d --out data/mpm-2d --workers 2

Every trajectory's scene is drawn from its own generator seeded by (seed, material,
index), so the dataset is the same whatever the number of workers or the order in which
shards finish; on the CPU the simulation is deterministic too (tested). Shards are
written atomically and an interrupted run resumes: shards already on disk with the same
settings are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physim.config import check_choice, check_int
from physim.errors import ConfigError
from physim.io.fingerprint import source_digest

from .dataset import MATERIALS

__all__ = ["PRESETS", "MPMDatasetConfig", "MPMPreset", "cli_generate", "generate_mpm_dataset", "scene_spec",
           "simulate_scene"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
"""Bumped whenever a scene would be simulated differently: shards of another version are regenerated."""


@dataclass(frozen=True, kw_only=True)
class MPMPreset:
    """Simulation and randomisation settings of a dataset."""

    dim: int
    """Spatial dimension."""
    grid: int
    """MPM grid nodes per axis (domain [0, 1]^dim)."""
    dt: float
    """MPM substep [s]."""
    substeps: int
    """Substeps per stored frame (a frame is substeps·dt seconds)."""
    frames: int
    """Stored frames per trajectory, the initial state included."""
    trajectories: int
    """Trajectories per material (all splits)."""
    particles_per_cell: int
    """MPM particles per grid cell."""
    size: tuple[float, float]
    """Range of body sizes [m] (edge length, or diameter)."""
    speed: tuple[float, float]
    """Range of initial speeds [m/s]."""
    max_bodies: int = 2
    """Bodies per scene are drawn from 1 ... max_bodies (same material)."""


PRESETS: dict[str, MPMPreset] = {
    # ~0.5-3k particles per scene, 4 ms frames (0.48 s: fall, impact, flow); minutes on two CPU cores.
    "cpu-2d": MPMPreset(dim=2, grid=64, dt=2e-4, substeps=20, frames=120, trajectories=10, particles_per_cell=4,
                        size=(0.15, 0.3), speed=(0.0, 1.5)),
    # The same motions with 4× the particles (~4-20k per scene, half the spacing): scenes large
    # enough for GIOROM's per-step speed-up over GNS to show on a CPU (scripts/bench_giorom.py).
    # dt halves with dx (CFL 0.42 for sand's P-wave, 33 m/s); 4 ms frames as cpu-2d.
    "cpu-2d-dense": MPMPreset(dim=2, grid=128, dt=1e-4, substeps=40, frames=120, trajectories=7,
                              particles_per_cell=4, size=(0.25, 0.4), speed=(0.0, 1.5)),
    # ~1-5k particles per scene on a 32³ grid (NCLaw's training grid), 4 ms frames.
    "cpu-3d": MPMPreset(dim=3, grid=32, dt=2e-4, substeps=20, frames=110, trajectories=6, particles_per_cell=8,
                        size=(0.15, 0.3), speed=(0.0, 1.5)),
    # The paper's scale (GIOROM on NCLaw-style MPM data): 3-D, 13 trajectories per material, 5 ms
    # frames, tens of thousands of particles per scene (dt from the CFL bound of sand at 64³). GPU.
    "paper": MPMPreset(dim=3, grid=64, dt=2e-4, substeps=25, frames=200, trajectories=13, particles_per_cell=8,
                       size=(0.2, 0.4), speed=(0.0, 2.0)),
}


def material_object(name: str):
    """The `physim.mpm` material of each dataset material (NCLaw's ground-truth presets, ANCHORS §1.4)."""
    from physim import mpm

    if name == "jelly":
        return mpm.Elastic(E=1e5, nu=0.2, density=1e3)
    if name == "plasticine":
        return mpm.VonMises(E=3e5, nu=0.25, yield_stress=5e3, density=1e3)
    if name == "sand":
        return mpm.DruckerPrager(E=1e6, nu=0.2, friction_angle=25.0, density=1e3)
    if name == "water":
        return mpm.NewtonianFluid(bulk_modulus=1e5, viscosity=0.0, density=1e3)
    if name == "non_newtonian":
        return mpm.NonNewtonianFluid(bulk_modulus=1e5, yield_stress=50.0, consistency=1.0, flow_index=0.5,
                                     density=1e3)
    raise ConfigError("materials", name, "one of " + ", ".join(MATERIALS))


def scene_spec(preset: MPMPreset, material: str, index: int, seed: int, attempt: int = 0) -> dict[str, Any]:
    """The random scene of one trajectory: bodies (shape kind, centre, size, velocity), as plain data.

    Drawn from a generator seeded by (seed, material, index, attempt) only.
    """
    rng = np.random.default_rng([seed, MATERIALS.index(material), index, attempt])
    dim = preset.dim
    dx = 1.0 / preset.grid
    lo_wall, hi_wall = 3 * dx + 0.02, 1.0 - 3 * dx - 0.02  # inside the MPM walls, with a margin
    count = int(rng.integers(1, preset.max_bodies + 1))
    kinds = ("box", "sphere") if dim == 2 else ("box", "sphere", "cylinder")
    bodies = []
    # Bodies get disjoint slabs along x so they never overlap at the start.
    slabs = np.linspace(lo_wall, hi_wall, count + 1)
    for b in range(count):
        kind = str(rng.choice(kinds))
        size = rng.uniform(*preset.size, size=dim)
        size[0] = min(size[0], slabs[b + 1] - slabs[b] - 0.01)
        if kind != "box":
            size[:] = min(size.min(), slabs[b + 1] - slabs[b] - 0.01)
        half = size / 2
        centre = np.empty(dim)
        centre[0] = rng.uniform(slabs[b] + half[0], slabs[b + 1] - half[0])
        for d in range(1, dim):
            # Vertical: start 5-35 cm above the floor, so bodies land within the trajectory.
            low, high = (lo_wall + half[d] + 0.05, lo_wall + half[d] + 0.35) if d == 1 else (lo_wall + half[d],
                                                                                           hi_wall - half[d])
            high = min(high, hi_wall - half[d])
            centre[d] = rng.uniform(min(low, high), high)
        direction = rng.normal(size=dim)
        velocity = direction / np.linalg.norm(direction) * rng.uniform(*preset.speed)
        bodies.append({"kind": kind, "center": centre.round(6).tolist(), "size": size.round(6).tolist(),
                       "velocity": velocity.round(6).tolist()})
    return {"material": material, "index": index, "seed": seed, "attempt": attempt, "bodies": bodies}


def simulate_scene(preset: MPMPreset, spec: dict[str, Any], *, device: str | None = None):
    """Run MPM on one scene; returns positions [m] (frames, count, dim) as float32 numpy and the bounds."""
    import torch

    from physim import mpm

    dim = preset.dim
    # Sand needs friction with the ground to pile up (on slip walls it spreads over the whole floor);
    # the other materials use slip walls.
    boundary = "sticky" if spec["material"] == "sand" else "slip"
    cfg = mpm.SceneConfig(dim=dim, grid=preset.grid, dt=preset.dt, substeps=preset.substeps, boundary=boundary)
    material = material_object(spec["material"])
    bodies = []
    for i, b in enumerate(spec["bodies"]):
        c, s = tuple(b["center"]), b["size"]
        if b["kind"] == "box":
            shape = mpm.Box(center=c, size=tuple(s))
        elif b["kind"] == "sphere":
            shape = mpm.Sphere(center=c, radius=s[0] / 2)
        else:
            shape = mpm.Cylinder(center=c, radius=s[0] / 2, height=s[1])
        bodies.append(mpm.Body(name=f"body{i}", shape=shape, material=material, velocity=tuple(b["velocity"]),
                               particles_per_cell=preset.particles_per_cell))
    sim = mpm.Simulator(cfg, bodies, device=device, seed=int(spec["seed"]))
    state = sim.reset()
    frames = [state.x.detach().cpu().numpy().astype(np.float32)]
    with torch.no_grad():
        for _ in range(preset.frames - 1):
            state = sim.step(state)
            frames.append(state.x.detach().cpu().numpy().astype(np.float32))
    # The walls act `bound` nodes inside the grid: that box is the domain the models see.
    dx = cfg.spacing
    bounds = [[cfg.bound * dx] * dim, [(n - cfg.bound) * dx for n in cfg.resolution]]
    return np.stack(frames), bounds


@dataclass(frozen=True, kw_only=True)
class MPMDatasetConfig:
    """Generate an MPM particle dataset (HDF5 shards with train/valid/test splits)."""

    out: Path = Path("data/mpm-cpu-2d")
    """Output folder (shards in train/, valid/, test/ and manifest.json)."""
    preset: str = "cpu-2d"
    """Settings: cpu-2d, cpu-2d-dense, cpu-3d (CPU) or paper (3-D at the paper's scale; GPU)."""
    materials: tuple[str, ...] = MATERIALS
    """Materials to simulate."""
    trajectories: int | None = None
    """Trajectories per material (None: the preset's)."""
    frames: int | None = None
    """Stored frames per trajectory (None: the preset's)."""
    splits: tuple[float, float, float] = (0.7, 0.1, 0.2)
    """Fractions of train, valid and test trajectories (each split gets at least one when possible)."""
    shard_size: int = 4
    """Trajectories per shard."""
    workers: int = 2
    """Parallel processes (1: in this process)."""
    seed: int = 0
    """Seed of all scene randomisation."""
    progress: bool = True
    """Show a progress bar."""
    grid: int | None = None
    """MPM grid nodes per axis (None: the preset's)."""
    particles_per_cell: int | None = None
    """MPM particles per cell (None: the preset's)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        check_choice("preset", self.preset, tuple(PRESETS))
        object.__setattr__(self, "materials", tuple(self.materials))
        for m in self.materials:
            check_choice("materials", m, MATERIALS)
        if not self.materials or len(set(self.materials)) != len(self.materials):
            raise ConfigError("materials", self.materials, "one or more distinct material names")
        if self.trajectories is not None:
            check_int("trajectories", self.trajectories, 1)
        if self.frames is not None:
            check_int("frames", self.frames, 2)
        if len(self.splits) != 3 or any(not (0 <= s <= 1) for s in self.splits) or not math.isclose(
                sum(self.splits), 1.0, abs_tol=1e-9):
            raise ConfigError("splits", self.splits, "three fractions in [0, 1] summing to 1")
        check_int("shard_size", self.shard_size, 1)
        check_int("workers", self.workers, 1)
        check_int("seed", self.seed, 0)
        if self.grid is not None:
            check_int("grid", self.grid, 9, 4096)
        if self.particles_per_cell is not None:
            check_int("particles_per_cell", self.particles_per_cell, 1, 1000)

    def resolved_preset(self) -> MPMPreset:
        """The preset with this config's overrides applied."""
        changes = {k: getattr(self, k) for k in ("trajectories", "frames", "grid", "particles_per_cell")
                   if getattr(self, k) is not None}
        return dataclasses.replace(PRESETS[self.preset], **changes)


def _split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_valid = round(n * fractions[1])
    n_test = round(n * fractions[2])
    if n >= 3:
        n_valid = max(n_valid, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = n - n_valid - n_test
    if n_train < 1 and fractions[0] > 0:
        raise ConfigError("trajectories", n, f"enough trajectories for the splits {fractions}")
    return n_train, n_valid, n_test


def _tasks(cfg: MPMDatasetConfig, preset: MPMPreset) -> list[dict[str, Any]]:
    """Shards to write: each a split name, a file name and the (material, index) of its trajectories."""
    per_split: dict[str, list[tuple[str, int]]] = {"train": [], "valid": [], "test": []}
    for material in cfg.materials:
        n_train, n_valid, _ = _split_counts(preset.trajectories, cfg.splits)
        for i in range(preset.trajectories):
            split = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
            per_split[split].append((material, i))
    tasks = []
    for split, items in per_split.items():
        for s in range(0, len(items), cfg.shard_size):
            tasks.append({"split": split, "file": f"{split}/shard_{s // cfg.shard_size:05d}.h5",
                          "items": items[s:s + cfg.shard_size]})
    return tasks


def _task_hash(preset: MPMPreset, task: dict[str, Any], seed: int) -> str:
    blob = json.dumps({"preset": dataclasses.asdict(preset), "items": task["items"], "seed": seed,
                       "materials": list(MATERIALS), "version": GENERATOR_VERSION,
                       # the engine that simulates the shard: changed kernels make a stale shard
                       "code": source_digest("physim.mpm")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _shard_is_current(path: Path, digest: str) -> bool:
    from .dataset import DatasetFileError, read_trajectories

    if not path.is_file():
        return False
    try:
        return read_trajectories(path, check_finite=False).attrs.get("spec_hash") == digest
    except DatasetFileError:
        return False


def _make_shard(preset_dict: dict[str, Any], task: dict[str, Any], seed: int, root: str, digest: str) -> int:
    """Simulate one shard's trajectories and write it (runs in a worker process)."""
    import torch

    from physim.errors import SimulationDiverged

    from .dataset import Trajectory, write_trajectories

    torch.set_num_threads(1)  # one core per worker: the pool provides the parallelism
    preset = MPMPreset(**{**preset_dict, "size": tuple(preset_dict["size"]), "speed": tuple(preset_dict["speed"])})
    trajectories, bounds = [], None
    for material, index in task["items"]:
        for attempt in range(3):
            spec = scene_spec(preset, material, index, seed, attempt)
            try:
                positions, bounds = simulate_scene(preset, spec)
                break
            except SimulationDiverged as exc:  # a rare unlucky scene: draw another one, and say so
                log.warning("%s %d (attempt %d) diverged: %s; drawing a new scene", material, index, attempt, exc)
        else:
            raise SimulationDiverged(-1, material, f"trajectory {index} diverged in 3 random scenes")
        trajectories.append(Trajectory(
            positions=torch.from_numpy(positions),
            particle_type=torch.full((positions.shape[1],), MATERIALS.index(material), dtype=torch.long),
            material=material, name=f"{material}_{index:04d}", attrs={"scene": spec, "seed": seed}))
    frame_dt = preset.dt * preset.substeps
    write_trajectories(Path(root) / task["file"], trajectories, dt=frame_dt, bounds=bounds,
                       attrs={"spec_hash": digest, "preset": dataclasses.asdict(preset), "seed": seed,
                              "generator": "physim.operators.lagrangian.generate"})
    return len(trajectories)


def generate_mpm_dataset(cfg: MPMDatasetConfig) -> Path:
    """Generate (or complete) the dataset described by `cfg`; returns the manifest path."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    from physim.io.atomic import atomic_write_text

    preset = cfg.resolved_preset()
    tasks = _tasks(cfg, preset)
    cfg.out.mkdir(parents=True, exist_ok=True)
    digests = [_task_hash(preset, t, cfg.seed) for t in tasks]
    todo = [(t, d) for t, d in zip(tasks, digests) if not _shard_is_current(cfg.out / t["file"], d)]
    total = sum(len(t["items"]) for t in tasks)
    done = total - sum(len(t["items"]) for t, _ in todo)
    if done:
        log.info("resuming: %d of %d trajectories already on disk", done, total)
    preset_dict = dataclasses.asdict(preset)
    bar = tqdm(total=total, initial=done, desc=f"MPM {preset.dim}-D ({cfg.preset})", unit="traj",
               disable=not cfg.progress)
    try:
        if cfg.workers == 1 or len(todo) <= 1:
            for t, d in todo:
                bar.update(_make_shard(preset_dict, t, cfg.seed, str(cfg.out), d))
        else:
            # spawn: Warp and torch threads do not survive fork safely.
            with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn"),
                                     initializer=_worker_init, initargs=(os.environ.get("PHYSIM_DEVICE", "cpu"),)
                                     ) as pool:
                futures = [pool.submit(_make_shard, preset_dict, t, cfg.seed, str(cfg.out), d) for t, d in todo]
                for fut in as_completed(futures):
                    bar.update(fut.result())
    finally:
        bar.close()
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    counts = {"train": 0, "valid": 0, "test": 0}
    for t in tasks:
        splits[t["split"]].append(t["file"])
        counts[t["split"]] += len(t["items"])
    from .dataset import read_trajectories

    first = read_trajectories(cfg.out / tasks[0]["file"], check_finite=False)
    manifest = {
        "format": "physim-lagrangian",
        "preset": cfg.preset,
        "settings": dataclasses.asdict(preset),
        "materials": list(cfg.materials),
        "seed": cfg.seed,
        "frame_dt": preset.dt * preset.substeps,
        "dim": preset.dim,
        "bounds": first.bounds.tolist(),
        "splits": splits,
        "trajectories": counts,
    }
    path = cfg.out / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return path


def _worker_init(device: str) -> None:
    os.environ["PHYSIM_DEVICE"] = device


def cli_generate(cfg: MPMDatasetConfig) -> None:
    """`physim data mpm`: generate the dataset and print where it went."""
    path = generate_mpm_dataset(cfg)
    info = json.loads(path.read_text())
    print(f"wrote {path.parent}: " + ", ".join(f"{k} {v}" for k, v in info["trajectories"].items())
          + f" trajectories ({', '.join(info['materials'])})")
