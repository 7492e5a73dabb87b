"""Colliders: planes, boxes, spheres, cylinders, capsules and meshes, static or kinematic.

A collider is a signed distance function in its own frame, placed by a pose
(position, unit quaternion xyzw). Grid nodes inside a collider (SDF < 0) have their
velocity relative to the collider's surface velocity projected (Coulomb friction μ):
the normal component stops approaching, the tangential one shrinks by μ times the
removed normal speed (sticky colliders take the surface velocity outright). The
momentum removed is the contact force on the collider, reported every step with its
torque about the collider's position.

Kinematic colliders are the end-effectors: each control step they move with the
velocities (or towards the target pose) given in the action; see `SceneConfig.action`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from physim.config import check_positive, check_range
from physim.errors import ConfigError

__all__ = [
    "BoxCollider",
    "CapsuleCollider",
    "Collider",
    "CylinderCollider",
    "MeshCollider",
    "PlaneCollider",
    "SphereCollider",
    "quat_from_two_vectors",
]


def _vec3(field: str, value, n: int = 3) -> tuple[float, ...]:
    try:
        out = tuple(float(c) for c in value)
    except TypeError:
        raise ConfigError(field, value, f"{n} numbers") from None
    if len(out) == 2 and n == 3:
        out = (*out, 0.0)
    if len(out) != n or not all(map(math.isfinite, out)):
        raise ConfigError(field, value, f"{n} finite numbers")
    return out


def quat_from_two_vectors(a, b) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) rotating direction `a` onto direction `b`."""
    a = np.asarray(a, dtype=float) / np.linalg.norm(a)
    b = np.asarray(b, dtype=float) / np.linalg.norm(b)
    c = np.cross(a, b)
    w = 1.0 + float(a @ b)
    if w < 1e-12:  # opposite: rotate by π about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 0.0, 1.0])
        axis /= np.linalg.norm(axis)
        return (float(axis[0]), float(axis[1]), float(axis[2]), 0.0)
    q = np.array([c[0], c[1], c[2], w])
    q /= np.linalg.norm(q)
    return tuple(float(v) for v in q)


@dataclass(frozen=True, kw_only=True)
class Collider:
    """Common fields of every collider."""

    name: str = ""
    """Unique name (default ``collider<i>``); its friction appears as ``"<name>.friction"`` in params."""
    position: tuple[float, ...] = (0.0, 0.0, 0.0)
    """Position of the collider frame [m] (2 numbers in a 2D scene are completed with z = 0)."""
    rotation: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0)
    """Orientation as a unit quaternion (x, y, z, w)."""
    friction: float = 0.5
    """Coulomb friction coefficient μ, ≥ 0."""
    sticky: bool = False
    """Nodes inside take the collider's velocity (no sliding, no separation)."""
    kinematic: bool = False
    """Driven by the actions (an end-effector); static otherwise."""

    type_code: ClassVar[int] = -1
    type_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _vec3("position", self.position)
        q = _vec3("rotation", self.rotation, 4)
        if abs(math.sqrt(sum(c * c for c in q)) - 1.0) > 1e-6:
            raise ConfigError("rotation", self.rotation, "a unit quaternion (x, y, z, w)")
        check_range("friction", self.friction, 0.0)

    @property
    def pose(self) -> tuple[float, ...]:
        """Position (3) and quaternion (4)."""
        return (*_vec3("position", self.position), *self.rotation)

    def shape_params(self) -> tuple[float, float, float]:
        """Three shape numbers the kernel reads (half sizes, radius, half height)."""
        return (0.0, 0.0, 0.0)

    def describe(self) -> dict:
        out = {"type": self.type_name}
        for k, v in self.__dict__.items():
            out[k] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True, kw_only=True)
class PlaneCollider(Collider):
    """Half-space below a plane through `position` with outward `normal`."""

    normal: tuple[float, ...] = (0.0, 1.0, 0.0)
    """Outward unit normal (the side the material lives on)."""

    type_code: ClassVar[int] = 0
    type_name: ClassVar[str] = "plane"

    def __post_init__(self) -> None:
        n = _vec3("normal", self.normal)
        if np.linalg.norm(n) < 1e-9:
            raise ConfigError("normal", self.normal, "a non-zero vector")
        object.__setattr__(self, "rotation", quat_from_two_vectors((0.0, 1.0, 0.0), n))
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class BoxCollider(Collider):
    """Box with half extents `half_size` in its frame."""

    half_size: tuple[float, ...] = (0.1, 0.1, 0.1)
    """Half edge lengths [m] (in 2D give 2 numbers; z is then unbounded)."""

    type_code: ClassVar[int] = 1
    type_name: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        super().__post_init__()
        h = tuple(float(c) for c in self.half_size)
        if len(h) not in (2, 3):
            raise ConfigError("half_size", self.half_size, "2 or 3 positive numbers [m]")
        for c in h:
            check_positive("half_size", c)

    def shape_params(self):
        h = tuple(float(c) for c in self.half_size)
        return (h[0], h[1], h[2] if len(h) == 3 else 1e6)


@dataclass(frozen=True, kw_only=True)
class SphereCollider(Collider):
    """Ball of `radius` (a disk in 2D)."""

    radius: float = 0.1
    """Radius [m]."""

    type_code: ClassVar[int] = 2
    type_name: ClassVar[str] = "sphere"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("radius", self.radius)

    def shape_params(self):
        return (float(self.radius), 0.0, 0.0)


@dataclass(frozen=True, kw_only=True)
class CylinderCollider(Collider):
    """Cylinder along its frame's y axis."""

    radius: float = 0.1
    """Radius [m]."""
    half_height: float = 0.1
    """Half length along y [m]."""

    type_code: ClassVar[int] = 3
    type_name: ClassVar[str] = "cylinder"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("radius", self.radius)
        check_positive("half_height", self.half_height)

    def shape_params(self):
        return (float(self.radius), float(self.half_height), 0.0)


@dataclass(frozen=True, kw_only=True)
class CapsuleCollider(Collider):
    """Capsule: a segment along its frame's y axis of half length `half_height`, thickened by `radius`."""

    radius: float = 0.05
    """Radius [m]."""
    half_height: float = 0.1
    """Half length of the axis segment [m]."""

    type_code: ClassVar[int] = 4
    type_name: ClassVar[str] = "capsule"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("radius", self.radius)
        check_positive("half_height", self.half_height)

    def shape_params(self):
        return (float(self.radius), float(self.half_height), 0.0)


@dataclass(frozen=True, kw_only=True)
class MeshCollider(Collider):
    """A closed triangle mesh (read with meshio) as a signed distance field, 3D only."""

    path: str = ""
    """Mesh file (.obj, .stl, .msh)."""
    scale: float = 1.0
    """Uniform scale of the file's coordinates (the mesh frame origin stays the file's origin)."""

    type_code: ClassVar[int] = 5
    type_name: ClassVar[str] = "mesh"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("scale", self.scale)
        if not Path(self.path).is_file():
            raise ConfigError("path", self.path, "an existing mesh file (.obj, .stl, .msh)")
