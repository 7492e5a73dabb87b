"""HDF5 trajectories of MPM scenes: written atomically, read back with validation.

Schema (N particles, d dimensions, K colliders, T frames)::

    /x                [T, N, d]     float32  positions [m]
    /v                [T, N, d]     float32  velocities [m/s]
    /F                [T, N, d, d]  float32  deformation gradients
    /time             [T]           float64  simulated time [s]
    /material_id      [N]           int32    body index of each particle
    /mass             [N]           float32  particle mass [kg]
    /collider_pose    [T, K, 7]     float32  position [m] + quaternion (x, y, z, w)
    /collider_force   [T, K, 3]     float32  contact force on the collider [N] (mean over the step)
    /collider_torque  [T, K, 3]     float32  contact torque about its position [N·m]
    attributes: dt, substeps, dim, grid, dx, boundary, gravity, seed, physim_version, units,
                bodies (JSON: name, material and its current parameters), colliders (JSON),
                complete (False while a run is in progress)

A run writes to ``<out>.partial`` and renames it to ``<out>`` when done (atomic on
POSIX); the partial file also holds the last state under ``/resume`` so that an
interrupted run continues from there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from physim.mpm.state import State

__all__ = ["TrajectoryWriter", "read_trajectory"]

REQUIRED = ("x", "v", "F", "time", "material_id", "mass", "collider_pose", "collider_force", "collider_torque")


def scene_metadata(sim, seed: int) -> dict:
    """Attributes describing the scene (JSON-serialisable values)."""
    import physim

    cfg = sim.cfg
    bodies = []
    for b in sim.bodies:
        params = {k.split(".", 1)[1]: float(v.detach()) for k, v in sim.params.items() if k.startswith(b.name + ".")}
        bodies.append({"name": b.name, "material": b.material.describe(), "params": params})
    colliders = [c.describe() | {"friction": float(sim.params[f"{c.name}.friction"].detach())} for c in sim.colliders]
    return {
        "dt": cfg.dt,
        "substeps": cfg.substeps,
        "dim": cfg.dim,
        "grid": list(cfg.resolution),
        "dx": cfg.spacing,
        "boundary": cfg.boundary,
        "gravity": list(cfg.gravity_vector),
        "seed": int(seed),
        "physim_version": physim.__version__,
        "units": json.dumps({"x": "m", "v": "m/s", "F": "1", "time": "s", "mass": "kg", "collider_force": "N",
                             "collider_torque": "N m", "dt": "s", "dx": "m"}),
        "bodies": json.dumps(bodies),
        "colliders": json.dumps(colliders),
    }


class TrajectoryWriter:
    """Append frames of a simulation to an HDF5 file; finish with `close()`.

    Example::

        with TrajectoryWriter("traj.h5", sim, seed=0) as w:
            s = sim.reset()
            w.append(s)
            for _ in range(100):
                s = sim.step(s)
                w.append(s)

    Args:
        path: Final file. Frames go to ``<path>.partial`` until `close()` renames it.
        sim: The simulator (for static datasets and metadata).
        seed: Seed recorded in the metadata.
        resume: Reopen an existing ``<path>.partial`` and append to it.
    """

    def __init__(self, path: str | os.PathLike, sim, *, seed: int = 0, resume: bool = False):
        import h5py

        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        n, d, k = sim.particle_count, sim.cfg.dim, len(sim.colliders)
        if resume and self.partial.exists():
            self.f = h5py.File(self.partial, "a")
            return
        self.f = h5py.File(self.partial, "w")
        f = self.f
        for key, value in scene_metadata(sim, seed).items():
            f.attrs[key] = value
        f.attrs["complete"] = False
        f.attrs["body_names"] = json.dumps(sim.body_names)
        f.attrs["collider_names"] = json.dumps(sim.collider_names)
        chunk_n = min(n, 65536)
        for name, shape in (("x", (n, d)), ("v", (n, d)), ("F", (n, d, d)), ("collider_pose", (k, 7)),
                            ("collider_force", (k, 3)), ("collider_torque", (k, 3))):
            chunks = (1, chunk_n, *shape[1:]) if name in ("x", "v", "F") else (1, *shape)
            f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype="f4",
                             chunks=chunks if all(chunks) else None)
        f.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8")
        f.create_dataset("material_id", data=sim.material_id.cpu().numpy().astype(np.int32))
        f.create_dataset("mass", data=sim.particle_mass().detach().cpu().numpy().astype(np.float32))

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return int(self.f["time"].shape[0])

    def append(self, state: State) -> None:
        """Write one frame."""
        f = self.f
        t = self.frames
        values = {"x": state.x, "v": state.v, "F": state.F, "collider_pose": state.collider_pose,
                  "collider_force": state.collider_force, "collider_torque": state.collider_torque}
        for name, value in values.items():
            ds = f[name]
            ds.resize(t + 1, axis=0)
            ds[t] = value.detach().cpu().numpy()
        f["time"].resize(t + 1, axis=0)
        f["time"][t] = float(state.time)

    def save_resume(self, state: State, step: int) -> None:
        """Store `state` (full precision) and its step index, then flush: a crash loses at most what follows."""
        f = self.f
        if "resume" in f:
            del f["resume"]
        g = f.create_group("resume")
        for name in ("x", "v", "C", "F", "collider_pose", "collider_force", "collider_torque", "time"):
            g.create_dataset(name, data=getattr(state, name).detach().cpu().numpy())
        g.attrs["step"] = int(step)
        f.flush()

    def load_resume(self, like: State) -> tuple[State, int] | None:
        """The stored state (as tensors shaped like `like`) and step, or None."""
        f = self.f
        if "resume" not in f:
            return None
        g = f["resume"]
        values = {name: torch.as_tensor(g[name][()], dtype=getattr(like, name).dtype, device=like.x.device)
                  for name in ("x", "v", "C", "F", "collider_pose", "collider_force", "collider_torque", "time")}
        step = int(g.attrs["step"])
        # drop frames written after the stored state (they will be recomputed)
        for name in ("x", "v", "F", "collider_pose", "collider_force", "collider_torque", "time"):
            f[name].resize(step + 1, axis=0)
        return State(**values), step

    def close(self) -> Path:
        """Mark complete, flush, fsync and rename to the final path; returns it."""
        if "resume" in self.f:
            del self.f["resume"]
        self.f.attrs["complete"] = True
        self.f.flush()
        self.f.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.path)
        return self.path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.f.close()  # keep the partial file: the run can resume


def read_trajectory(path: str | os.PathLike) -> dict:
    """Read and validate a trajectory file written by `TrajectoryWriter`.

    Returns:
        A dict of numpy arrays (the datasets) plus ``"attrs"`` (metadata, JSON decoded).

    Raises:
        ValueError: one line naming the file and what is wrong with it.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        missing = [k for k in REQUIRED if k not in f]
        if missing:
            raise ValueError(f"{path}: not an MPM trajectory (missing datasets {', '.join(missing)})")
        out = {k: f[k][()] for k in REQUIRED}
        attrs = {}
        for k, v in f.attrs.items():
            if k in ("bodies", "colliders", "units", "body_names", "collider_names"):
                try:
                    v = json.loads(v)
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: attribute {k!r} is not valid JSON") from None
            attrs[k] = v
    T, N = out["time"].shape[0], out["material_id"].shape[0]
    d = int(attrs.get("dim", out["x"].shape[-1] if out["x"].ndim == 3 else 0))
    checks = {"x": (T, N, d), "v": (T, N, d), "F": (T, N, d, d), "mass": (N,)}
    for k, shape in checks.items():
        if out[k].shape != shape:
            raise ValueError(f"{path}: dataset {k!r} has shape {out[k].shape}, expected {shape}")
    if not attrs.get("complete", False):
        raise ValueError(f"{path}: the run that wrote it did not finish (attribute complete is false)")
    if not np.isfinite(out["x"]).all():
        raise ValueError(f"{path}: dataset 'x' contains NaN or inf")
    out["attrs"] = attrs
    return out
