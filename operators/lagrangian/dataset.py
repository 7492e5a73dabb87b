"""HDF5 files of Lagrangian (particle) trajectories: schema, writer and validating reader.

One file (a *shard*) holds any number of trajectories; the schema is documented in
docs/giorom.md ("Dataset format")::

    /                         attrs: format="physim-lagrangian", format_version=1, dim, dt [s],
                                     bounds [m] (2, dim), materials (JSON list), physim_version
    /trajectories/<name>/positions      float32 (frame_count, particle_count, dim) [m]
    /trajectories/<name>/particle_type  int32 (particle_count,): index into `materials`
    /trajectories/<name>              attrs: material, seed and the physical parameters

Reading validates every key, shape and value: a malformed shard raises one
`DatasetFileError` whose message names the file, the key and what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physim.errors import PhysimError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MATERIALS",
    "DatasetFileError",
    "LagrangianFile",
    "Trajectory",
    "load_split",
    "read_trajectories",
    "write_trajectories",
]

FORMAT = "physim-lagrangian"
FORMAT_VERSION = 1
MATERIALS = ("jelly", "plasticine", "sand", "water", "non_newtonian")
"""Default material table: `particle_type` indexes it (a file may declare its own)."""

_ROOT_ATTRS = ("format", "format_version", "dim", "dt", "bounds", "materials")


class DatasetFileError(PhysimError, ValueError):
    """A dataset file is missing, unreadable or does not follow the schema."""

    def __init__(self, path: str | os.PathLike, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


@dataclass
class Trajectory:
    """One particle trajectory.

    Attributes:
        positions: Particle positions [m], float32 tensor of shape (frame_count, particle_count, dim).
        particle_type: Material index of each particle, int64 tensor of shape (particle_count,).
        material: Name of the trajectory's (main) material.
        name: Group name in its file.
        attrs: Seed and physical parameters (E [Pa], nu, ...), JSON-compatible.
    """

    positions: torch.Tensor
    particle_type: torch.Tensor
    material: str = ""
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def particle_count(self) -> int:
        return int(self.positions.shape[1])


@dataclass
class LagrangianFile:
    """Contents of one shard: metadata and trajectories.

    Attributes:
        path: The file read.
        dim: Spatial dimension (2 or 3).
        dt: Time between stored frames [s].
        bounds: Domain box [m], shape (2, dim): lower corner, upper corner.
        materials: Material name of each particle type.
        trajectories: The trajectories, in file order.
        attrs: Remaining root attributes (seed, generator settings, physim version).
    """

    path: Path
    dim: int
    dt: float
    bounds: np.ndarray
    materials: tuple[str, ...]
    trajectories: list[Trajectory]
    attrs: dict[str, Any] = field(default_factory=dict)


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_trajectories(
    path: str | os.PathLike,
    trajectories: Iterable[Trajectory],
    *,
    dt: float,
    bounds: Sequence[Sequence[float]],
    materials: Sequence[str] = MATERIALS,
    attrs: dict[str, Any] | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write trajectories to an HDF5 shard atomically (temp file, then rename).

    Args:
        path: Destination ``.h5`` file.
        trajectories: Trajectories of one spatial dimension.
        dt: Time between stored frames [s].
        bounds: Domain box [m], ((lo_x, lo_y[, lo_z]), (hi_x, hi_y[, hi_z])).
        materials: Material name of each particle type.
        attrs: Extra root attributes (JSON-serialisable values).
        compression: h5py compression of the positions (None for none).

    Returns:
        The path written.
    """
    import h5py

    import physim
    from physim.io.atomic import atomic_path

    bounds_arr = np.asarray(bounds, dtype=np.float64)
    dim = bounds_arr.shape[1]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["dim"] = dim
        f.attrs["dt"] = float(dt)
        f.attrs["bounds"] = bounds_arr
        f.attrs["materials"] = json.dumps(list(materials))
        f.attrs["physim_version"] = physim.__version__
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
        group = f.create_group("trajectories")
        for i, traj in enumerate(trajectories):
            name = traj.name or f"traj_{i:05d}"
            g = group.create_group(name)
            pos = traj.positions.detach().cpu().numpy().astype(np.float32)
            if pos.ndim != 3 or pos.shape[2] != dim:
                raise ValueError(f"trajectory {name}: positions of shape {pos.shape}, "
                                 f"expected (frames, particles, {dim})")
            g.create_dataset("positions", data=pos, compression=compression,
                             chunks=(1, *pos.shape[1:]) if compression else None)
            g.create_dataset("particle_type", data=traj.particle_type.detach().cpu().numpy().astype(np.int32))
            g.attrs["material"] = traj.material
            for k, v in traj.attrs.items():
                g.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
    return Path(path)


def read_trajectories(path: str | os.PathLike, *, check_finite: bool = True) -> LagrangianFile:
    """Read and validate one shard.

    Raises:
        DatasetFileError: naming the file and key, for a missing or unreadable file, a
            missing key or attribute, a wrong shape or dtype, non-finite positions, or a
            particle type outside the material table.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(path, "/", "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetFileError(path, "/", f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with f:
        for key in _ROOT_ATTRS:
            if key not in f.attrs:
                raise DatasetFileError(path, f"/@{key}", "missing root attribute")
        if _attr_value(f.attrs["format"]) != FORMAT:
            raise DatasetFileError(path, "/@format", f"is {_attr_value(f.attrs['format'])!r}, expected {FORMAT!r}")
        version = _attr_value(f.attrs["format_version"])
        if version != FORMAT_VERSION:
            raise DatasetFileError(path, "/@format_version", f"is {version!r}; this physim reads {FORMAT_VERSION}")
        dim = _attr_value(f.attrs["dim"])
        if dim not in (1, 2, 3):
            raise DatasetFileError(path, "/@dim", f"is {dim!r}, expected 1, 2 or 3")
        dt = float(_attr_value(f.attrs["dt"]))
        if not (np.isfinite(dt) and dt > 0):
            raise DatasetFileError(path, "/@dt", f"is {dt!r}, expected a positive time step [s]")
        bounds = np.asarray(f.attrs["bounds"], dtype=np.float64)
        if bounds.shape != (2, dim) or not np.all(np.isfinite(bounds)) or not np.all(bounds[1] > bounds[0]):
            raise DatasetFileError(path, "/@bounds", f"is {bounds.tolist()}, expected finite (2, {dim}) [lo, hi] with "
                                                     "hi > lo")
        try:
            materials = tuple(json.loads(_attr_value(f.attrs["materials"])))
        except (TypeError, ValueError):
            raise DatasetFileError(path, "/@materials", "is not a JSON list of material names") from None
        if "trajectories" not in f or not isinstance(f["trajectories"], h5py.Group):
            raise DatasetFileError(path, "/trajectories", "missing group")
        trajs = []
        for name in sorted(f["trajectories"]):
            trajs.append(_read_one(path, f["trajectories"][name], name, dim, len(materials), check_finite))
        if not trajs:
            raise DatasetFileError(path, "/trajectories", "holds no trajectory")
        attrs = {k: _attr_value(v) for k, v in f.attrs.items() if k not in _ROOT_ATTRS}
    return LagrangianFile(path=path, dim=dim, dt=dt, bounds=bounds, materials=materials, trajectories=trajs,
                          attrs=attrs)


def _read_one(path: Path, g, name: str, dim: int, type_count: int, check_finite: bool) -> Trajectory:
    import h5py

    base = f"/trajectories/{name}"
    if not isinstance(g, h5py.Group):
        raise DatasetFileError(path, base, "is not a group")
    for key in ("positions", "particle_type"):
        if key not in g:
            raise DatasetFileError(path, f"{base}/{key}", "missing dataset")
    pos_ds, type_ds = g["positions"], g["particle_type"]
    if pos_ds.ndim != 3 or pos_ds.shape[2] != dim or pos_ds.shape[0] < 2 or pos_ds.shape[1] < 1:
        raise DatasetFileError(path, f"{base}/positions",
                               f"has shape {pos_ds.shape}, expected (frames >= 2, particles >= 1, {dim})")
    if pos_ds.dtype.kind != "f":
        raise DatasetFileError(path, f"{base}/positions", f"has dtype {pos_ds.dtype}, expected floating point")
    n = pos_ds.shape[1]
    if type_ds.shape != (n,) or type_ds.dtype.kind not in "iu":
        raise DatasetFileError(path, f"{base}/particle_type",
                               f"has shape {type_ds.shape} and dtype {type_ds.dtype}, "
                               f"expected integers of shape ({n},)")
    pos = np.asarray(pos_ds[...], dtype=np.float32)
    if check_finite and not np.all(np.isfinite(pos)):
        bad = np.argwhere(~np.isfinite(pos))[0]
        raise DatasetFileError(path, f"{base}/positions",
                               f"contains NaN or inf (first at frame {bad[0]}, particle {bad[1]})")
    ptype = np.asarray(type_ds[...], dtype=np.int64)
    if ptype.size and (ptype.min() < 0 or ptype.max() >= type_count):
        raise DatasetFileError(path, f"{base}/particle_type",
                               f"has values in [{ptype.min()}, {ptype.max()}], expected [0, {type_count - 1}] "
                               "(indices into /@materials)")
    attrs = {k: _attr_value(v) for k, v in g.attrs.items()}
    material = str(attrs.pop("material", ""))
    return Trajectory(positions=torch.from_numpy(pos), particle_type=torch.from_numpy(ptype), material=material,
                      name=name, attrs=attrs)


def load_split(root: str | os.PathLike, split: str) -> list[LagrangianFile]:
    """Read every shard of one split (``train``, ``valid`` or ``test``) of a dataset folder.

    The folder holds ``manifest.json`` (written by the generator) listing each split's
    shards; without one, the shards ``<root>/<split>/*.h5`` are read in name order.

    Raises:
        DatasetFileError: for a missing folder, manifest entry or shard, or a malformed shard;
            or when the shards of the split disagree in dim, dt, bounds or materials.
    """
    root = Path(root)
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_text())
            files = [root / p for p in info["splits"][split]]
        except (ValueError, KeyError, TypeError):
            raise DatasetFileError(manifest, f"splits.{split}", "missing or malformed manifest entry") from None
    else:
        files = sorted((root / split).glob("*.h5"))
    if not files:
        raise DatasetFileError(root, split, "no shard found for this split")
    shards = [read_trajectories(p) for p in files]
    first = shards[0]
    for s in shards[1:]:
        same = (s.dim == first.dim and np.isclose(s.dt, first.dt) and np.allclose(s.bounds, first.bounds)
                and s.materials == first.materials)
        if not same:
            raise DatasetFileError(s.path, "/@dim,dt,bounds,materials", f"differ from those of {first.path}")
    return shards
