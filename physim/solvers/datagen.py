"""Neural-operator data sets from PDE solves: ``physim data darcy`` and ``physim data poisson``.

Both write one HDF5 file (atomically) following the schema in docs/solvers.md
(``physim.solvers.datagen/1``): inputs ``x`` and solutions ``y`` of shape (N, s, s) in float32,
per-sample solver statistics, node coordinates and a ``metadata`` group (units, PDE, solver,
seed, physim version, the resolved config). Recycling is on by default: the systems are sorted
by SKR's features and solved in that order with GCRO-DR, carrying the recycled subspace.

- **darcy**: −∇·(a ∇u) = f on (0, 1)², u = 0 on the boundary; x = a (log-normal or thresholded
  GRF), y = u, f constant.
- **poisson**: −Δu = f on (0, 1)², u = 0 on the boundary; x = f (GRF), y = u.

Long runs resume: every ``chunk`` solved systems are saved (atomically) under ``<out>.parts/``;
running the same command again skips what is done. A different config in that folder is refused.

    physim data darcy --out out/data/darcy64.h5 --n-samples 200 --resolution 64
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError, FileError

__all__ = ["SCHEMA", "DarcyDataConfig", "DataFileError", "PoissonDataConfig", "generate", "generate_cli",
           "load_dataset"]

log = logging.getLogger(__name__)

SCHEMA = "physim.solvers.datagen/1"
Solver = Literal["gcrodr", "gcrotmk", "gmres", "cg", "direct"]
Precond = Literal["none", "jacobi", "ilu", "ichol", "amg"]
Sort = Literal["greedy", "gray", "none"]


class DataFileError(FileError):
    """A data file is missing, truncated or does not follow the schema; the message names the file."""


@dataclass(frozen=True, kw_only=True)
class _CommonDataConfig:
    out: Path = Path("out/data/dataset.h5")
    """HDF5 file to write (atomically); resume data lives in <out>.parts/ meanwhile."""
    n_samples: int = 100
    """Number of samples N."""
    resolution: int = 64
    """Interior grid nodes per side s (s² unknowns per system)."""
    alpha: float = 2.5
    """Smoothness exponent of the Gaussian random field."""
    tau: float = 7.0
    """Inverse length scale of the Gaussian random field."""
    solver: Solver = "gcrodr"
    """gcrodr (recycling GCRO-DR, default), gcrotmk (scipy, recycling), gmres (scipy, from scratch),
    cg (physim), direct (sparse LU)."""
    recycle: bool = True
    """Carry the recycled Krylov subspace from one system to the next (gcrodr, gcrotmk)."""
    sort: Sort = "greedy"
    """Order of the solves: SKR features + greedy nearest neighbour, Gray-code regions, or none."""
    preconditioner: Precond = "none"
    """Preconditioner built per system."""
    rtol: float = 1e-8
    """Relative residual tolerance of every solve."""
    m: int = 40
    """Krylov dimension per cycle (GMRES restart length)."""
    k: int = 20
    """Recycled vectors (gcrodr, gcrotmk)."""
    seed: int = 0
    """Seed of the random fields."""
    chunk: int = 25
    """Systems solved between resume checkpoints."""
    overwrite: bool = False
    """Replace an existing output file."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_int("n_samples", self.n_samples, 1)
        check_int("resolution", self.resolution, 4, 4096)
        check_positive("alpha", self.alpha)
        check_positive("tau", self.tau)
        check_range("rtol", self.rtol, 0.0, 1.0, low_inclusive=False)
        check_int("m", self.m, 2)
        check_int("k", self.k, 1, self.m - 1)
        check_int("seed", self.seed, 0)
        check_int("chunk", self.chunk, 1)
        for name, choices in (("solver", Solver.__args__), ("preconditioner", Precond.__args__),
                              ("sort", Sort.__args__)):
            if getattr(self, name) not in choices:
                raise ConfigError(name, getattr(self, name), "one of " + ", ".join(choices))
        if self.solver == "cg" and self.preconditioner == "ilu":
            raise ConfigError("preconditioner", "ilu", "jacobi, ichol, amg or none for cg (ilu is not symmetric)")


@dataclass(frozen=True, kw_only=True)
class DarcyDataConfig(_CommonDataConfig):
    """Darcy flow −∇·(a∇u) = f on the unit square, u = 0 on the boundary; inputs a, outputs u."""

    out: Path = Path("out/data/darcy.h5")
    """HDF5 file to write (atomically); resume data lives in <out>.parts/ meanwhile."""
    coefficient: Literal["lognormal", "threshold"] = "lognormal"
    """a = exp(GRF) (SKR's data) or a = high/low by the sign of the GRF (the FNO benchmark)."""
    high: float = 12.0
    """Permeability where the GRF is ≥ 0 (threshold coefficient)."""
    low: float = 3.0
    """Permeability where the GRF is < 0 (threshold coefficient)."""
    forcing: float = 1.0
    """Constant source f."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.coefficient not in ("lognormal", "threshold"):
            raise ConfigError("coefficient", self.coefficient, "'lognormal' or 'threshold'")
        check_positive("high", self.high)
        check_positive("low", self.low)
        check_range("forcing", self.forcing)


@dataclass(frozen=True, kw_only=True)
class PoissonDataConfig(_CommonDataConfig):
    """Poisson's equation −Δu = f on the unit square, u = 0 on the boundary; inputs f, outputs u."""

    out: Path = Path("out/data/poisson.h5")
    """HDF5 file to write (atomically); resume data lives in <out>.parts/ meanwhile."""
    amplitude: float = 1.0
    """Scale of the source field f."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("amplitude", self.amplitude)


def _problem(cfg: _CommonDataConfig):
    """Inputs (N, s, s), matrix builder i ↦ A_i, right-hand sides (N, s²), PDE description."""
    from physim.solvers.problems import darcy_coefficient, darcy_matrix, gaussian_random_field, poisson_matrix

    s = cfg.resolution
    grf = gaussian_random_field(cfg.n_samples, s, alpha=cfg.alpha, tau=cfg.tau, rng=cfg.seed)
    if isinstance(cfg, DarcyDataConfig):
        a = darcy_coefficient(grf, kind=cfg.coefficient, high=cfg.high, low=cfg.low)
        rhs = np.full((cfg.n_samples, s * s), float(cfg.forcing))
        return a, (lambda i: darcy_matrix(a[i])), rhs, grf, {
            "pde": "-div(a grad u) = f on (0,1)^2, u = 0 on the boundary",
            "x": "permeability a", "y": "pressure head u", "units": {"x": "1", "y": "m", "coords": "m", "f": "1/m"},
        }
    f = cfg.amplitude * grf
    L = poisson_matrix(s)
    return f, (lambda i: L), f.reshape(cfg.n_samples, -1), grf, {
        "pde": "-laplace(u) = f on (0,1)^2, u = 0 on the boundary",
        "x": "source f", "y": "potential u", "units": {"x": "1/m^2", "y": "1", "coords": "m"},
    }


def _config_json(cfg: _CommonDataConfig) -> str:
    d = asdict(cfg)
    d["out"] = str(d["out"])
    d["kind"] = type(cfg).__name__
    return json.dumps(d, sort_keys=True)


def _solve_chunk(cfg, build_A, rhs, order: np.ndarray, state: dict) -> dict[str, np.ndarray]:
    """Solve the systems `order` (in that order) with the configured solver."""
    import scipy.sparse.linalg as sla

    from physim.solvers.skr import solve_sequence

    M = None if cfg.preconditioner == "none" else cfg.preconditioner
    n = len(order)
    if cfg.solver in ("gcrodr", "gcrotmk", "gmres"):
        from physim.solvers.recycling import RecycleSpace

        # The recycle state lives in `state` so it carries over from one chunk to the next.
        state.setdefault("space", RecycleSpace(k=cfg.k))
        state.setdefault("CU", [])
        seq = solve_sequence(lambda j: build_A(int(order[j])), lambda j: rhs[int(order[j])], n_systems=n,
                             method=cfg.solver, M=M, rtol=cfg.rtol, m=cfg.m, k=cfg.k, recycle=cfg.recycle,
                             space=state["space"], CU=state["CU"])
        return {"u": seq.x, "iterations": seq.iterations, "residual": seq.residuals, "seconds": seq.seconds,
                "converged": seq.converged}
    us, its, res, secs, conv = [], [], [], [], []
    for i in order:
        A, b = build_A(int(i)), rhs[int(i)]
        t0 = time.perf_counter()
        if cfg.solver == "direct":
            if "lu" not in state or isinstance(cfg, DarcyDataConfig):  # one matrix per sample
                state["lu"] = sla.splu(A.tocsc())
            u, nit = state["lu"].solve(b), 0
        else:
            import torch

            from physim.solvers.krylov_symmetric import cg

            out = cg(A, torch.from_numpy(b), M=M, rtol=cfg.rtol, maxiter=10 * b.size)
            u, nit = out.x.numpy(), int(out.iterations)
        secs.append(time.perf_counter() - t0)
        r = float(np.linalg.norm(b - A @ u))
        us.append(u)
        its.append(nit)
        res.append(r)
        conv.append(r <= cfg.rtol * float(np.linalg.norm(b)))
    return {"u": np.stack(us), "iterations": np.array(its), "residual": np.array(res), "seconds": np.array(secs),
            "converged": np.array(conv)}


def _read_parts(parts: Path, cfg_hash: str) -> dict[int, dict]:
    done: dict[int, dict] = {}
    if not parts.exists():
        return done
    stamp = parts / "config.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("hash") != cfg_hash:
        raise ConfigError("out", str(parts), "a resume folder written by the same config (delete it to start over)")
    for f in sorted(parts.glob("chunk_*.npz")):
        try:
            with np.load(f) as z:
                idx = z["index"]
                for j, i in enumerate(idx):
                    done[int(i)] = {key: z[key][j] for key in ("u", "iterations", "residual", "seconds", "converged")}
        except Exception as exc:  # a damaged checkpoint is re-solved, not trusted
            log.warning("ignoring unreadable checkpoint %s (%s)", f, exc)
    return done


def generate(cfg: DarcyDataConfig | PoissonDataConfig) -> Path:
    """Generate the data set described by `cfg` and return the path of the HDF5 file."""
    import h5py

    import physim
    from physim.io.atomic import atomic_path, atomic_write_text
    from physim.solvers.skr import skr_features, sort_systems

    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise ConfigError("out", str(out), "a path that does not exist yet (or pass --overwrite)")
    t_start = time.perf_counter()
    x, build_A, rhs, grf, pde = _problem(cfg)
    s = cfg.resolution
    t0 = time.perf_counter()
    order = sort_systems(skr_features(grf), method=cfg.sort) if cfg.n_samples > 1 else np.arange(cfg.n_samples)
    sort_seconds = time.perf_counter() - t0
    cfg_json = _config_json(cfg)
    cfg_hash = hashlib.sha256(cfg_json.encode()).hexdigest()[:16]
    parts = out.with_name(out.name + ".parts")
    done = _read_parts(parts, cfg_hash)
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(parts / "config.json", json.dumps({"hash": cfg_hash, "config": json.loads(cfg_json)}))
    todo = [int(i) for i in order if int(i) not in done]
    if done:
        log.info("resuming: %d of %d samples already solved", len(done), cfg.n_samples)
    state: dict = {}
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.n_samples, initial=len(done), desc=f"physim data ({cfg.solver})", unit="system")
    for c0 in range(0, len(todo), cfg.chunk):
        chunk = np.array(todo[c0: c0 + cfg.chunk], dtype=np.int64)
        solved = _solve_chunk(cfg, build_A, rhs, chunk, state)
        with atomic_path(parts / f"chunk_{len(done):06d}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, index=chunk, **solved)
        for j, i in enumerate(chunk):
            done[int(i)] = {key: solved[key][j] for key in solved}
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    y = np.stack([done[i]["u"] for i in range(cfg.n_samples)]).reshape(cfg.n_samples, s, s)
    its = np.array([done[i]["iterations"] for i in range(cfg.n_samples)], dtype=np.int64)
    res = np.array([done[i]["residual"] for i in range(cfg.n_samples)], dtype=np.float64)
    secs = np.array([done[i]["seconds"] for i in range(cfg.n_samples)], dtype=np.float64)
    conv = np.array([done[i]["converged"] for i in range(cfg.n_samples)], dtype=bool)
    bnorm = np.linalg.norm(rhs, axis=1)
    coords = (np.arange(s) + 1.0) / (s + 1)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["schema"] = SCHEMA
        h5.attrs["n_samples"] = cfg.n_samples
        h5.attrs["resolution"] = s
        h5.create_dataset("x", data=np.asarray(x, dtype=np.float32).reshape(cfg.n_samples, s, s), compression="gzip")
        h5.create_dataset("y", data=y.astype(np.float32), compression="gzip")
        h5.create_dataset("coords", data=coords)
        h5.create_dataset("iterations", data=its)
        h5.create_dataset("relative_residual", data=res / np.where(bnorm > 0, bnorm, 1.0))
        h5.create_dataset("solve_seconds", data=secs)
        h5.create_dataset("converged", data=conv)
        h5.create_dataset("solve_order", data=np.asarray(order, dtype=np.int64))
        meta = h5.create_group("metadata")
        meta.attrs["pde"] = pde["pde"]
        meta.attrs["x"] = pde["x"]
        meta.attrs["y"] = pde["y"]
        meta.attrs["units"] = json.dumps(pde["units"])
        meta.attrs["domain"] = "(0, 1)^2, nodes at (i + 1) h, h = 1 / (resolution + 1)"
        meta.attrs["boundary"] = "homogeneous Dirichlet"
        meta.attrs["discretisation"] = "5-point finite volumes (harmonic face means for darcy)"
        meta.attrs["solver"] = cfg.solver
        meta.attrs["preconditioner"] = cfg.preconditioner
        meta.attrs["recycle"] = bool(cfg.recycle)
        meta.attrs["sort"] = cfg.sort
        meta.attrs["rtol"] = cfg.rtol
        meta.attrs["seed"] = cfg.seed
        meta.attrs["physim_version"] = physim.__version__
        meta.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta.attrs["config"] = cfg_json
        meta.attrs["sort_seconds"] = sort_seconds
        meta.attrs["total_seconds"] = time.perf_counter() - t_start
    for f in parts.glob("*"):
        f.unlink()
    parts.rmdir()
    if not conv.all():
        log.warning("%d of %d samples did not reach rtol=%g (see the 'converged' data set)", int((~conv).sum()),
                    cfg.n_samples, cfg.rtol)
    return out


def generate_cli(cfg: DarcyDataConfig | PoissonDataConfig) -> Path:
    """Entry point of ``physim data darcy|poisson``: generate and print a one-line summary."""
    path = generate(cfg)
    ds = load_dataset(path)
    print(f"wrote {path}: {ds['x'].shape[0]} samples of {ds['x'].shape[1]}x{ds['x'].shape[2]}, solver "
          f"{cfg.solver}, {int(ds['iterations'].sum())} iterations, "
          f"{float(ds['solve_seconds'].sum()):.2f} s solving, all converged: {bool(ds['converged'].all())}")
    return path


_REQUIRED = {"x": 3, "y": 3, "coords": 1, "iterations": 1, "relative_residual": 1, "solve_seconds": 1,
             "converged": 1, "solve_order": 1}


def load_dataset(path: str | Path) -> dict:
    """Read and validate a data set written by `generate`.

    Returns:
        Dict with numpy arrays ``x``, ``y`` (N, s, s), ``coords`` (s,), the per-sample solver statistics,
        and ``metadata`` (a dict of the metadata attributes).

    Raises:
        DataFileError: naming the file and what is wrong (missing, not HDF5, wrong schema, a missing or
            mis-shaped data set).
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataFileError(p, "no such file")
    try:
        h5 = h5py.File(p, "r")
    except OSError as exc:
        raise DataFileError(p, f"not a readable HDF5 file ({exc})") from None
    with h5:
        if h5.attrs.get("schema") != SCHEMA:
            raise DataFileError(p, f"schema attribute is {h5.attrs.get('schema')!r}, expected {SCHEMA!r}")
        out: dict = {}
        for name, ndim in _REQUIRED.items():
            if name not in h5:
                raise DataFileError(p, f"missing data set {name!r}")
            try:
                arr = h5[name][()]
            except Exception as exc:
                raise DataFileError(p, f"data set {name!r} is unreadable ({exc})") from None
            if arr.ndim != ndim:
                raise DataFileError(p, f"data set {name!r} has shape {arr.shape}, expected {ndim} dimensions")
            out[name] = arr
        N = out["x"].shape[0]
        if out["y"].shape != out["x"].shape:
            raise DataFileError(p, f"x has shape {out['x'].shape} but y has {out['y'].shape}")
        for name in ("iterations", "relative_residual", "solve_seconds", "converged", "solve_order"):
            if out[name].shape != (N,):
                raise DataFileError(p, f"data set {name!r} has shape {out[name].shape}, expected ({N},)")
        if "metadata" not in h5:
            raise DataFileError(p, "missing group 'metadata'")
        out["metadata"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5["metadata"].attrs.items()}
    return out
