"""Ground-truth trajectories of the NCLaw experiments: generation with physim.mpm, HDF5 files.

A trajectory holds the full particle state at every control step, so that training
can restart windows from the observed state (teacher forcing):

    /x   positions [m]                      (T+1, N, d)   float32
    /v   velocities [m/s]                   (T+1, N, d)
    /C   APIC affine field [1/s]            (T+1, N, d, d)
    /F   (elastic) deformation gradients    (T+1, N, d, d)
    /material_id  body index per particle   (N,)          int64
    attrs: format = "physim-nclaw-trajectory", version, meta (JSON: material, case,
           scene spec, dt, substeps, physim version, the ground-truth law)

Files are written atomically and validated on reading: a missing, truncated or
foreign file raises `TrajectoryFileError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physim.errors import FileError

__all__ = [
    "TRAJECTORY_VERSION",
    "Trajectory",
    "TrajectoryFileError",
    "generate_trajectory",
    "load_trajectory",
    "save_trajectory",
]

TRAJECTORY_VERSION = 1
_FORMAT = "physim-nclaw-trajectory"
_FIELDS = ("x", "v", "C", "F")


class TrajectoryFileError(FileError):
    """A trajectory file is missing, truncated, malformed or from an incompatible version."""


@dataclass(frozen=True)
class Trajectory:
    """Particle states at every control step of one rollout.

    Attributes:
        x: Positions [m], shape (T+1, N, d).
        v: Velocities [m/s], shape (T+1, N, d).
        C: APIC affine velocity field [1/s], shape (T+1, N, d, d).
        F: Deformation gradients (elastic part for plastic laws), shape (T+1, N, d, d).
        material_id: Body index of each particle, shape (N,).
        meta: Material, case, scene spec, time step and versions.
    """

    x: torch.Tensor
    v: torch.Tensor
    C: torch.Tensor
    F: torch.Tensor
    material_id: torch.Tensor
    meta: dict[str, Any]

    @property
    def steps(self) -> int:
        """Control steps T."""
        return int(self.x.shape[0]) - 1

    def state(self, t: int, sim):
        """The observed state at step t as a `physim.mpm.State` of simulator `sim` (static colliders only)."""
        import dataclasses

        if any(c.kinematic for c in sim.colliders):
            raise ValueError("Trajectory.state: NCLaw's teacher forcing supports static colliders only")
        opts = {"device": sim.device, "dtype": sim.dtype}
        # Static colliders keep their initial pose; contact forces are outputs, not inputs, of a step.
        return dataclasses.replace(
            sim.reset(), x=self.x[t].to(**opts), v=self.v[t].to(**opts), C=self.C[t].to(**opts),
            F=self.F[t].to(**opts), time=torch.tensor(t * sim.cfg.control_dt, device=sim.device, dtype=torch.float64))


def generate_trajectory(sim, steps: int, meta: dict[str, Any]) -> Trajectory:
    """Roll `sim` forward from its reset state for `steps` control steps and record every state."""
    import physim

    s = sim.reset()
    d = sim.cfg.dim

    def observe(t, state):
        return torch.cat([state.x, state.v, state.C.flatten(1), state.F.flatten(1)], dim=1)

    with torch.no_grad():
        obs = sim.rollout(s, steps=steps, observe=observe).observations
    x = torch.cat([s.x[None], obs[:, :, :d]])
    v = torch.cat([s.v[None], obs[:, :, d : 2 * d]])
    C = torch.cat([s.C[None], obs[:, :, 2 * d : 2 * d + d * d].unflatten(-1, (d, d))])
    F = torch.cat([s.F[None], obs[:, :, 2 * d + d * d :].unflatten(-1, (d, d))])
    full_meta = {**meta, "dt": sim.cfg.dt, "substeps": sim.cfg.substeps, "dim": d,
                 "physim_version": physim.__version__,
                 "bodies": [{"name": b.name, "material": b.material.describe()} for b in sim.bodies]}
    return Trajectory(x=x.cpu(), v=v.cpu(), C=C.cpu(), F=F.cpu(), material_id=sim.material_id.cpu(), meta=full_meta)


def save_trajectory(path: str | os.PathLike, traj: Trajectory) -> Path:
    """Write `traj` to an HDF5 file atomically; returns the path."""
    import h5py

    from physim.io.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = _FORMAT
        f.attrs["version"] = TRAJECTORY_VERSION
        f.attrs["meta"] = json.dumps(traj.meta)
        for name in _FIELDS:
            f.create_dataset(name, data=getattr(traj, name).to(torch.float32).numpy())
        f.create_dataset("material_id", data=traj.material_id.numpy())
    return path


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read and validate a trajectory written by `save_trajectory`.

    Raises:
        TrajectoryFileError: naming the file and what is wrong with it.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise TrajectoryFileError(path, "no such file (generate it with scripts/nclaw_generate.py)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TrajectoryFileError(path, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with f:
        if f.attrs.get("format") != _FORMAT:
            raise TrajectoryFileError(path, f"not an NCLaw trajectory (format {f.attrs.get('format')!r})")
        version = int(f.attrs.get("version", -1))
        if version != TRAJECTORY_VERSION:
            raise TrajectoryFileError(path, f"trajectory version {version} is not supported (this physim reads "
                                            f"{TRAJECTORY_VERSION})")
        try:
            meta = json.loads(f.attrs["meta"])
            arrays = {name: torch.from_numpy(f[name][()]) for name in (*_FIELDS, "material_id")}
        except (KeyError, ValueError, OSError) as exc:
            raise TrajectoryFileError(path, f"damaged or incomplete ({type(exc).__name__}: {exc})") from None
    x = arrays["x"]
    if x.ndim != 3 or x.shape[0] < 2:
        raise TrajectoryFileError(path, f"x has shape {tuple(x.shape)}; expected (T+1 ≥ 2, N, d)")
    T1, n, d = x.shape
    expected = {"v": (T1, n, d), "C": (T1, n, d, d), "F": (T1, n, d, d), "material_id": (n,)}
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise TrajectoryFileError(path, f"{name} has shape {tuple(arrays[name].shape)}; expected {shape}")
    for name in _FIELDS:
        if not torch.isfinite(arrays[name]).all():
            raise TrajectoryFileError(path, f"{name} holds NaN or inf")
    return Trajectory(**{k: arrays[k] for k in _FIELDS}, material_id=arrays["material_id"].long(), meta=meta)
