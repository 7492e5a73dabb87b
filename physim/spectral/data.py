"""Navier–Stokes datasets: `physim data nse ...` writes HDF5 trajectories of vorticity.

Recipes (``preset``):

=============  ==========================================================================
``cpu``        forced FNO-NS flow solved directly at 64² (float32, dt 1e-2 — within 1e-5 of a
               float64 dt 1e-3 solve), warm-up to t = 10, 50 frames every 0.2 s; 288
               trajectories (256 train + 32 test). A few minutes on two CPU cores.
``fno``        Spectral-Refiner's forced recipe: ν 1e-3, f = 0.1(sin 2π(x+y) + cos 2π(x+y)),
               GRF α 2.5, τ 7, CN–Heun at 256² with dt 1e-3 in float64, warm-up to t = 30,
               100 frames to t = 50, subsampled to 64²; 1280 trajectories (1152 + 128).
``mcwilliams`` decaying turbulence on [0, 2π]², ν 1e-3, McWilliams spectrum k₀ 4, 256²,
               dt 1e-3, warm-up 4.5, 100 frames to t = 10, subsampled to 64².
=============  ==========================================================================

Any field left unset takes the preset's value; a set field overrides it.

File schema (after The Well's layout)::

    /t0_fields/vorticity   float32 (n_traj, n_t, H, W)   ω [1/s], axis 2 = x, axis 3 = y
    /forcing               float32 (H, W)                 f [1/s²] at the stored resolution
    /dimensions/time       float64 (n_t,)                 frame times [s]
    /dimensions/x, /y      float64 (H,), (W,)             coordinates [m]
    /metadata              attrs: every resolved setting, units, physim version, format version
    root attrs             n_trajectories, n_spatial_dims=2, grid_type="cartesian",
                           simulation_parameters (JSON), dataset="physim.nse"

Generation runs in chunks of `batch_size` trajectories; each finished chunk is saved beside
the output (``<out>.parts/``), so an interrupted run resumes where it stopped. The HDF5 file
is written atomically at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError, FileError
from physim.io.atomic import atomic_path

__all__ = [
    "PRESETS",
    "NSEData",
    "NSEDataConfig",
    "NSEDatasetError",
    "SpaceTimeWindows",
    "generate",
    "generate_cli",
    "load_nse_dataset",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"n_traj": 288, "n_solve": 64, "n_out": 64, "length": 1.0, "viscosity": 1e-3, "forcing": "kolmogorov",
            "initial": "grf", "dt": 1e-2, "warmup": 10.0, "frame_dt": 0.2, "n_frames": 50, "dtype": "float32",
            "batch_size": 96},
    "fno": {"n_traj": 1280, "n_solve": 256, "n_out": 64, "length": 1.0, "viscosity": 1e-3, "forcing": "kolmogorov",
            "initial": "grf", "dt": 1e-3, "warmup": 30.0, "frame_dt": 0.2, "n_frames": 100, "dtype": "float64",
            "batch_size": 32},
    "mcwilliams": {"n_traj": 1280, "n_solve": 256, "n_out": 64, "length": 2 * math.pi, "viscosity": 1e-3,
                   "forcing": "none", "initial": "mcwilliams", "dt": 1e-3, "warmup": 4.5, "frame_dt": 0.055,
                   "n_frames": 100, "dtype": "float64", "batch_size": 32},
}
_RESOLVED = ("n_traj", "n_solve", "n_out", "length", "viscosity", "forcing", "initial", "dt", "warmup", "frame_dt",
             "n_frames", "dtype", "batch_size")


class NSEDatasetError(FileError):
    """A Navier–Stokes dataset file is missing, truncated or malformed."""


@dataclass(frozen=True, kw_only=True)
class NSEDataConfig:
    """Generate a 2D Navier–Stokes vorticity dataset (HDF5); unset fields come from `preset`."""

    out: Path = Path("data/nse_cpu.h5")
    """Output HDF5 file."""
    preset: str = "cpu"
    """Recipe: 'cpu', 'fno' (Spectral-Refiner forced NS) or 'mcwilliams' (decaying turbulence)."""
    n_traj: int | None = None
    """Number of trajectories."""
    n_solve: int | None = None
    """Solver resolution (even)."""
    n_out: int | None = None
    """Stored resolution; must divide n_solve (pointwise subsampling)."""
    length: float | None = None
    """Side of the periodic square [m]."""
    viscosity: float | None = None
    """Kinematic viscosity ν [m²/s]."""
    forcing: str | None = None
    """'kolmogorov' or 'none'."""
    initial: str | None = None
    """Initial vorticity: 'grf' or 'mcwilliams'."""
    alpha: float = 2.5
    """GRF smoothness α."""
    tau: float = 7.0
    """GRF inverse length scale τ."""
    k0: float = 4.0
    """McWilliams peak wavenumber."""
    energy: float = 0.5
    """McWilliams mean kinetic energy [m²/s²]."""
    dt: float | None = None
    """Solver time step [s]; must divide frame_dt."""
    warmup: float | None = None
    """Time simulated before the first stored frame [s]."""
    frame_dt: float | None = None
    """Time between stored frames [s]."""
    n_frames: int | None = None
    """Stored frames per trajectory (the first at t = warmup)."""
    dtype: str | None = None
    """Solver arithmetic: 'float64' or 'float32' (files store float32)."""
    batch_size: int | None = None
    """Trajectories solved together (one resumable chunk)."""
    seed: int = 0
    """Seed of the initial fields (chunk i draws with seed·1000003 + i)."""
    device: str | None = None
    """Torch device ('cpu', 'cuda'); None follows PHYSIM_DEVICE."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, tuple(PRESETS))
        for key in _RESOLVED:
            if getattr(self, key) is None:
                object.__setattr__(self, key, PRESETS[self.preset][key])
        object.__setattr__(self, "out", Path(self.out))
        check_int("n_traj", self.n_traj, 1)
        for key in ("n_solve", "n_out"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 2:
                raise ConfigError(key, v, "an even integer >= 8 (the FFT layout needs an even square grid)")
        if self.n_solve % self.n_out:
            raise ConfigError("n_out", self.n_out, f"a divisor of n_solve={self.n_solve}")
        check_positive("length", self.length)
        check_range("viscosity", self.viscosity, 0.0)
        check_choice("forcing", self.forcing, ("kolmogorov", "none"))
        check_choice("initial", self.initial, ("grf", "mcwilliams"))
        check_positive("alpha", self.alpha)
        check_positive("tau", self.tau)
        check_positive("k0", self.k0)
        check_positive("energy", self.energy)
        check_positive("dt", self.dt)
        check_range("warmup", self.warmup, 0.0)
        check_positive("frame_dt", self.frame_dt)
        check_int("n_frames", self.n_frames, 2)
        check_choice("dtype", self.dtype, ("float64", "float32"))
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        for key in ("frame_dt", "warmup"):
            ratio = getattr(self, key) / self.dt
            if abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
                raise ConfigError(key, getattr(self, key), f"a multiple of dt={self.dt}")

    def settings(self) -> dict[str, Any]:
        """The resolved settings that define the data (what the file's metadata records)."""
        d = dataclasses.asdict(self)
        for k in ("out", "device", "progress", "batch_size"):
            d.pop(k)
        return d


@dataclass(frozen=True)
class NSEData:
    """A loaded dataset.

    Attributes:
        vorticity: ω [1/s], float32, shape (n_traj, n_t, H, W).
        forcing: f [1/s²], shape (H, W).
        time: Frame times [s], shape (n_t,).
        settings: The generation settings from the file's metadata.
        path: The file read.
    """

    vorticity: torch.Tensor
    forcing: torch.Tensor
    time: torch.Tensor
    settings: dict[str, Any]
    path: Path

    @property
    def frame_dt(self) -> float:
        return float(self.settings["frame_dt"])


def _fingerprint(cfg: NSEDataConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.settings(), sort_keys=True).encode()).hexdigest()[:16]


def _solve_chunk(cfg: NSEDataConfig, index: int, count: int, device, bar) -> torch.Tensor:
    from physim.spectral.solver import NavierStokes2D, NSEConfig

    sub = round(cfg.frame_dt / cfg.dt)
    sim = NavierStokes2D(NSEConfig(n=cfg.n_solve, length=cfg.length, viscosity=cfg.viscosity, dt=cfg.dt,
                                   substeps=sub, forcing=cfg.forcing, initial=cfg.initial, alpha=cfg.alpha,
                                   tau=cfg.tau, k0=cfg.k0, energy=cfg.energy, dtype=cfg.dtype), device=device)
    state = sim.reset(seed=cfg.seed * 1_000_003 + index, batch=count)
    stride = cfg.n_solve // cfg.n_out
    warm_steps = round(cfg.warmup / cfg.dt)
    with torch.no_grad():
        if warm_steps:
            warm = NavierStokes2D(dataclasses.replace(sim.cfg, substeps=1), forcing=sim.forcing, device=device)
            # Warm up in blocks of frame_dt (one progress tick each), then the remainder.
            for _ in range(warm_steps // sub):
                state = sim.step(state)
                bar.update(1)
            for _ in range(warm_steps % sub):
                state = warm.step(state)
        frames = [state.vorticity[:, ::stride, ::stride].float().cpu()]
        for _ in range(cfg.n_frames - 1):
            state = sim.step(state)
            frames.append(state.vorticity[:, ::stride, ::stride].float().cpu())
            bar.update(1)
    return torch.stack(frames, dim=1)


def generate(cfg: NSEDataConfig) -> Path:
    """Generate the dataset described by `cfg` and write it atomically to ``cfg.out``; resumable."""
    import h5py
    from tqdm.auto import tqdm

    import physim
    from physim.runtime import device as default_device
    from physim.spectral.fields import kolmogorov_forcing
    from physim.spectral.grid import SpectralGrid

    device = default_device(cfg.device)
    parts = cfg.out.with_name(cfg.out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(cfg)
    n_chunks = math.ceil(cfg.n_traj / cfg.batch_size)
    ticks_per_chunk = round(cfg.warmup / cfg.dt) // round(cfg.frame_dt / cfg.dt) + cfg.n_frames - 1
    chunks = []
    with tqdm(total=n_chunks * ticks_per_chunk, desc=f"nse {cfg.preset} {cfg.n_solve}²", unit="frame",
              disable=not cfg.progress) as bar:
        for i in range(n_chunks):
            count = min(cfg.batch_size, cfg.n_traj - i * cfg.batch_size)
            part = parts / f"chunk_{i:05d}.pt"
            if part.exists():
                try:
                    saved = torch.load(part, weights_only=True)
                    if saved["fingerprint"] == fp and saved["vorticity"].shape[0] == count:
                        chunks.append(saved["vorticity"])
                        bar.update(ticks_per_chunk)
                        continue
                except Exception:  # a foreign or damaged part is recomputed, never trusted
                    pass
                log.warning("%s does not belong to this configuration; recomputing it", part)
            w = _solve_chunk(cfg, i, count, device, bar)
            if not bool(torch.isfinite(w).all()):
                from physim.errors import SimulationDiverged

                raise SimulationDiverged(-1, "vorticity", f"chunk {i} produced NaN/inf (lower dt={cfg.dt})")
            with atomic_path(part) as tmp:
                torch.save({"fingerprint": fp, "vorticity": w}, tmp)
            chunks.append(w)
    vort = torch.cat(chunks).numpy()
    grid = SpectralGrid.build(cfg.n_out, cfg.length)
    forcing = (kolmogorov_forcing(grid) if cfg.forcing == "kolmogorov" else torch.zeros(cfg.n_out, cfg.n_out))
    x, _ = grid.coordinates()
    times = cfg.warmup + cfg.frame_dt * torch.arange(cfg.n_frames, dtype=torch.float64)
    settings = cfg.settings()
    with atomic_path(cfg.out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["dataset"] = "physim.nse"
        h5.attrs["format_version"] = FORMAT_VERSION
        h5.attrs["n_trajectories"] = cfg.n_traj
        h5.attrs["n_spatial_dims"] = 2
        h5.attrs["grid_type"] = "cartesian"
        h5.attrs["simulation_parameters"] = json.dumps(settings)
        h5.create_dataset("t0_fields/vorticity", data=vort, chunks=(1, *vort.shape[1:]))
        h5["t0_fields/vorticity"].attrs["units"] = "1/s"
        h5["t0_fields/vorticity"].attrs["axes"] = "trajectory, time, x, y"
        h5.create_dataset("forcing", data=forcing.float().numpy())
        h5["forcing"].attrs["units"] = "1/s^2"
        h5.create_dataset("dimensions/time", data=times.numpy())
        h5.create_dataset("dimensions/x", data=x[:, 0].numpy())
        h5.create_dataset("dimensions/y", data=x[:, 0].numpy())
        meta = h5.create_group("metadata")
        for k, v in settings.items():
            meta.attrs[k] = v
        meta.attrs["physim_version"] = physim.__version__
        meta.attrs["units"] = json.dumps({"vorticity": "1/s", "forcing": "1/s^2", "time": "s", "x": "m",
                                          "viscosity": "m^2/s"})
        meta.attrs["scheme"] = "pseudo-spectral, 2/3 dealiasing, IMEX Crank-Nicolson/Heun"
    shutil.rmtree(parts, ignore_errors=True)
    log.info("wrote %s: vorticity %s", cfg.out, tuple(vort.shape))
    return cfg.out


def generate_cli(cfg: NSEDataConfig) -> None:
    """`physim data nse`: generate and report the file."""
    path = generate(cfg)
    print(f"wrote {path} ({cfg.n_traj} trajectories x {cfg.n_frames} frames at {cfg.n_out}², preset {cfg.preset})")


def load_nse_dataset(path: str | Path) -> NSEData:
    """Read and validate a file written by `generate`.

    Raises:
        NSEDatasetError: one line naming the file and what is wrong with it.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise NSEDatasetError(path, "no such file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise NSEDatasetError(path, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with h5:
        if h5.attrs.get("dataset") != "physim.nse":
            raise NSEDatasetError(path, "not a physim Navier–Stokes dataset (root attribute dataset != 'physim.nse')")
        if int(h5.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise NSEDatasetError(path, f"format version {h5.attrs.get('format_version')!r} is not {FORMAT_VERSION}")
        for key in ("t0_fields/vorticity", "forcing", "dimensions/time"):
            if key not in h5:
                raise NSEDatasetError(path, f"missing dataset '{key}'")
        try:
            vort = torch.from_numpy(h5["t0_fields/vorticity"][...])
            forcing = torch.from_numpy(h5["forcing"][...])
            times = torch.from_numpy(h5["dimensions/time"][...])
            settings = json.loads(h5.attrs["simulation_parameters"])
        except Exception as exc:  # truncated chunks or a damaged attribute
            raise NSEDatasetError(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
    if vort.dim() != 4 or vort.shape[-1] != vort.shape[-2]:
        raise NSEDatasetError(path, f"vorticity has shape {tuple(vort.shape)}, expected (n_traj, n_t, n, n)")
    if tuple(forcing.shape) != tuple(vort.shape[-2:]):
        raise NSEDatasetError(path, f"forcing has shape {tuple(forcing.shape)}, expected {tuple(vort.shape[-2:])}")
    if times.shape != (vort.shape[1],):
        raise NSEDatasetError(path, f"time has shape {tuple(times.shape)}, expected ({vort.shape[1]},)")
    if not bool(torch.isfinite(vort).all()):
        raise NSEDatasetError(path, "vorticity contains NaN or inf")
    for key in ("frame_dt", "viscosity", "length"):
        if key not in settings:
            raise NSEDatasetError(path, f"simulation_parameters lacks '{key}'")
    return NSEData(vorticity=vort, forcing=forcing, time=times, settings=settings, path=path)


class SpaceTimeWindows(torch.utils.data.Dataset):
    """Input/output windows of trajectories for space-time operators.

    Item i is ``{"x": ω[t_0 : t_0+t_in], "y": ω[t_0+t_in : t_0+t_in+t_out]}`` of trajectory i,
    each laid out (H, W, t) — the layout of `physim.operators.sfno.SFNO`.

    Args:
        vorticity: (n_traj, n_t, H, W).
        t_in, t_out: Input and output frames.
        start: First frame t_0.
    """

    def __init__(self, vorticity: torch.Tensor, t_in: int = 10, t_out: int = 40, start: int = 0):
        if vorticity.dim() != 4:
            raise ConfigError("vorticity", f"tensor of shape {tuple(vorticity.shape)}", "(n_traj, n_t, H, W)")
        check_int("t_in", t_in, 1)
        check_int("t_out", t_out, 1)
        check_int("start", start, 0)
        if start + t_in + t_out > vorticity.shape[1]:
            raise ConfigError("t_out", t_out, f"start + t_in + t_out <= {vorticity.shape[1]} frames in the data")
        w = vorticity[:, start:start + t_in + t_out].permute(0, 2, 3, 1).contiguous()
        self.x, self.y = w[..., :t_in], w[..., t_in:]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}
