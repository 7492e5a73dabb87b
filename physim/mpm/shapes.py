"""Body shapes and particle sampling: boxes, spheres, cylinders and meshes (.obj, .stl, .msh)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physim.config import check_positive
from physim.errors import ConfigError

__all__ = ["Box", "Cylinder", "Mesh", "Particles", "Shape", "Sphere", "sample_shape"]


def _vec(field: str, value, dim: int | None = None) -> tuple[float, ...]:
    try:
        out = tuple(float(c) for c in value)
    except TypeError:
        raise ConfigError(field, value, "a sequence of numbers") from None
    if len(out) not in (2, 3) or (dim is not None and len(out) != dim) or not all(map(math.isfinite, out)):
        raise ConfigError(field, value, f"{dim or '2 or 3'} finite numbers")
    return out


@dataclass(frozen=True, kw_only=True)
class Shape:
    """Base class: a region of space filled with particles."""

    def contains(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self, dim: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Box(Shape):
    """Axis-aligned box. Example: ``Box(center=(0.5, 0.3, 0.5), size=(0.2, 0.2, 0.2))``."""

    center: tuple[float, ...]
    """Centre [m]."""
    size: tuple[float, ...]
    """Full edge lengths [m]."""

    def __post_init__(self):
        _vec("center", self.center)
        for s in _vec("size", self.size):
            check_positive("size", s)

    def bounds(self, dim):
        c, s = np.array(self.center[:dim]), np.array(self.size[:dim])
        return c - s / 2, c + s / 2

    def contains(self, p):
        lo, hi = self.bounds(p.shape[1])
        return np.all((p >= lo) & (p <= hi), axis=1)


@dataclass(frozen=True, kw_only=True)
class Sphere(Shape):
    """Ball (a disk in 2D). Example: ``Sphere(center=(0.5, 0.5, 0.5), radius=0.1)``."""

    center: tuple[float, ...]
    """Centre [m]."""
    radius: float
    """Radius [m]."""

    def __post_init__(self):
        _vec("center", self.center)
        check_positive("radius", self.radius)

    def bounds(self, dim):
        c = np.array(self.center[:dim])
        return c - self.radius, c + self.radius

    def contains(self, p):
        return np.linalg.norm(p - np.array(self.center[: p.shape[1]]), axis=1) <= self.radius


@dataclass(frozen=True, kw_only=True)
class Cylinder(Shape):
    """Cylinder along the y axis (a rectangle 2r × height in 2D)."""

    center: tuple[float, ...]
    """Centre [m]."""
    radius: float
    """Radius [m]."""
    height: float
    """Height along y [m]."""

    def __post_init__(self):
        _vec("center", self.center)
        check_positive("radius", self.radius)
        check_positive("height", self.height)

    def bounds(self, dim):
        c = np.array(self.center[:dim])
        half = np.full(dim, self.radius)
        half[1] = self.height / 2
        return c - half, c + half

    def contains(self, p):
        c = np.array(self.center[: p.shape[1]])
        d = p - c
        radial = np.abs(d[:, 0]) if p.shape[1] == 2 else np.hypot(d[:, 0], d[:, 2])
        return (radial <= self.radius) & (np.abs(d[:, 1]) <= self.height / 2)


@dataclass(frozen=True, kw_only=True)
class Mesh(Shape):
    """A closed surface or volume mesh read with meshio (.obj, .stl, .msh, ...), 3D only.

    The mesh is scaled by `scale` and translated so that its bounding-box centre is at
    `center`. Inside points are found with the generalised winding number (Warp).
    """

    path: str
    """Mesh file."""
    center: tuple[float, ...]
    """Centre of the scaled bounding box [m]."""
    scale: float = 1.0
    """Uniform scale applied to the file's coordinates."""

    def __post_init__(self):
        _vec("center", self.center, 3)
        check_positive("scale", self.scale)
        if not Path(self.path).is_file():
            raise ConfigError("path", self.path, "an existing mesh file (.obj, .stl, .msh)")

    def triangles(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices [m] (V, 3) and triangles (T, 3) of the surface, placed and scaled."""
        from physim.mpm.mesh_io import read_surface

        pts, tris = read_surface(self.path)
        lo, hi = pts.min(0), pts.max(0)
        pts = (pts - (lo + hi) / 2) * self.scale + np.array(self.center)
        return pts, tris

    def bounds(self, dim):
        pts, _ = self.triangles()
        return pts.min(0), pts.max(0)

    def contains(self, p):
        from physim.mpm.sampling_kernels import inside_mesh

        pts, tris = self.triangles()
        return inside_mesh(pts, tris, p)


@dataclass(frozen=True, kw_only=True, eq=False)
class Particles(Shape):
    """Explicit particles (e.g. from another simulator or a dataset), each of volume `volume`."""

    positions: np.ndarray
    """Positions [m], shape (N, dim)."""
    volume: float
    """Volume of each particle [m^dim]."""

    def __post_init__(self):
        p = np.asarray(self.positions, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] not in (2, 3) or len(p) == 0 or not np.isfinite(p).all():
            raise ConfigError("positions", getattr(p, "shape", p), "a finite array of shape (N, 2) or (N, 3), N ≥ 1")
        object.__setattr__(self, "positions", p)
        check_positive("volume", self.volume)

    def bounds(self, dim):
        return self.positions.min(0), self.positions.max(0)

    def contains(self, p):
        return np.ones(len(p), dtype=bool)


def sample_shape(shape: Shape, dim: int, dx: float, particles_per_cell: int, mode: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Particle positions [m] (N, dim) filling `shape`, and the volume per particle [m^dim].

    ``"lattice"`` places particles on a regular sub-grid of spacing dx/ppc^(1/dim) (cell
    centred); ``"random"`` draws them uniformly at the same density.
    """
    if isinstance(shape, Mesh) and dim != 3:
        raise ConfigError("shape", "Mesh", "a 3D scene (meshes are sampled in 3D only)")
    if isinstance(shape, Particles):
        if shape.positions.shape[1] != dim:
            raise ConfigError("positions", shape.positions.shape, f"an array of shape (N, {dim})")
        return shape.positions.copy(), float(shape.volume)
    lo, hi = (np.asarray(b, dtype=np.float64) for b in shape.bounds(dim))
    vol = dx**dim / particles_per_cell
    if mode == "lattice":
        h = vol ** (1.0 / dim)
        axes = [np.arange(lo[d] + h / 2, hi[d], h) for d in range(dim)]
        p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    else:
        n = math.ceil(float(np.prod(hi - lo)) / vol)
        p = lo + (hi - lo) * rng.random((n, dim))
    p = p[shape.contains(p)]
    return p, vol
