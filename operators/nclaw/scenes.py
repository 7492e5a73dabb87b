"""Scenes of the NCLaw experiments: ground-truth materials, the training scene and the unseen cases.

Everything here is small enough for a CPU (2D by default, a 32² grid, a few hundred
particles); `SceneSpec` scales it up. Ground truth comes from physim.mpm's analytic
materials, with the presets of the NCLaw paper except that plasticine and sand are
softer (E 1.5e5 Pa), so that one 1e-3 s substep meets the CFL bound on the 32² grid for
every material:

==========  =============================================  =====================================
material    physim.mpm law                                 parameters
==========  =============================================  =====================================
jelly       `Elastic` (fixed corotated)                    E 1e5 Pa, ν 0.2, ρ 1e3
plasticine  `VonMises` (Hencky + J2 return)                E 1.5e5 Pa, ν 0.25, σ_y 5e3 Pa, ρ 1e3
sand        `DruckerPrager` (Hencky + Klár cone)           E 1.5e5 Pa, ν 0.2, φ 25°, ρ 1e3
water       `NewtonianFluid` (weakly compressible)         K 1e5 Pa, η 1e-3 Pa·s, ρ 1e3
==========  =============================================  =====================================

Cases (positions in a unit domain, gravity −y; the floor, and in the boundary case a
wall, are plane colliders with Coulomb friction 0.3 inside the domain's walls):

- ``train``: a box thrown down and sideways onto the floor (the one training trajectory);
- ``shape``: a bunny-like silhouette (2D; a sphere in 3D) in the same motion;
- ``velocity``: the box thrown down four times faster, and to the left;
- ``horizon``: the training scene for twice as many steps;
- ``boundary``: the box thrown against a vertical wall instead of the floor;
- ``multi``: the material and a second learned material colliding on the same grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from physim.config import check_choice, check_int, check_positive, check_range

__all__ = [
    "CASES",
    "MATERIALS",
    "PARTNER",
    "SceneSpec",
    "bodies_for_case",
    "colliders_for_case",
    "ground_truth_material",
    "initial_guess",
    "make_simulator",
]

MATERIALS = ("jelly", "plasticine", "sand", "water")
CASES = ("train", "shape", "velocity", "horizon", "boundary", "multi")
PARTNER = {"jelly": "plasticine", "plasticine": "jelly", "sand": "jelly", "water": "jelly"}
"""Second material of each material's multi-material scene."""

_GROUND_TRUTH: dict[str, dict[str, Any]] = {
    "jelly": {"type": "Elastic", "E": 1e5, "nu": 0.2, "model": "corotated", "density": 1e3},
    "plasticine": {"type": "VonMises", "E": 1.5e5, "nu": 0.25, "yield_stress": 5e3, "density": 1e3},
    "sand": {"type": "DruckerPrager", "E": 1.5e5, "nu": 0.2, "friction_angle": 25.0, "density": 1e3},
    "water": {"type": "NewtonianFluid", "bulk_modulus": 1e5, "viscosity": 1e-3, "density": 1e3},
}

# Where every learned model (and the system-identification baseline) starts: the right order of
# magnitude, not the answer. Stiffnesses are 0.4× the truth, ν 0.3, yield 2.5×, friction 35°.
_GUESS: dict[str, dict[str, float]] = {
    "jelly": {"E": 4e4, "nu": 0.3},
    "plasticine": {"E": 6e4, "nu": 0.3, "yield_stress": 1.25e4},
    "sand": {"E": 6e4, "nu": 0.3, "friction_angle": 35.0},
    "water": {"bulk_modulus": 4e4, "viscosity": 1e-2},
}


@dataclass(frozen=True, kw_only=True)
class SceneSpec:
    """Resolution and duration of the NCLaw scenes.

    Attributes:
        dim: Spatial dimension, 2 or 3.
        grid: Grid nodes per axis of the unit domain.
        particles_per_cell: Particles per cell (lattice sampling).
        steps: Control steps T of the training trajectory (the horizon case runs 2T).
        substeps: Substeps per control step.
        dt: Substep [s].
        box: Edge of the training box [m].
        gap: Height of the training box above the floor at the start [m].
    """

    dim: int = 2
    grid: int = 32
    particles_per_cell: int = 4
    steps: int = 40
    substeps: int = 5
    dt: float = 1e-3
    box: float = 0.25
    gap: float = 0.045

    def __post_init__(self) -> None:
        check_int("dim", self.dim, 2, 3)
        check_int("grid", self.grid, 16, 512)
        check_int("particles_per_cell", self.particles_per_cell, 1, 64)
        check_int("steps", self.steps, 1)
        check_int("substeps", self.substeps, 1)
        check_positive("dt", self.dt)
        check_range("box", self.box, 0.05, 0.4)
        check_range("gap", self.gap, 0.0, 0.3)

    def scene_config(self, *, dtype: str = "float32"):
        from physim.mpm import SceneConfig

        return SceneConfig(dim=self.dim, grid=self.grid, dt=self.dt, substeps=self.substeps, boundary="slip",
                           dtype=dtype)

    def horizon(self, case: str) -> int:
        """Control steps of a case's rollout."""
        return 2 * self.steps if case == "horizon" else self.steps

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def ground_truth_material(name: str):
    """The analytic physim.mpm material that generates `name`'s observations."""
    check_choice("material", name, MATERIALS)
    return analytic_material(name, {})


def analytic_material(name: str, values: dict[str, float]):
    """`name`'s analytic material with some parameters replaced (e.g. fitted or guessed values)."""
    import physim.mpm as mpm

    spec = dict(_GROUND_TRUTH[name])
    cls = getattr(mpm, spec.pop("type"))
    spec.update({k: float(v) for k, v in values.items()})
    return cls(**spec)


def initial_guess(name: str) -> dict[str, float]:
    """Starting values of the fitted parameters (also the learned laws' linear skeleton)."""
    check_choice("material", name, MATERIALS)
    return dict(_GUESS[name])


def guess_moduli(name: str) -> tuple[float, float]:
    """(E₀, ν₀) of the learned laws' linear skeleton for material `name`."""
    g = initial_guess(name)
    if "E" in g:
        return g["E"], g["nu"]
    # A fluid: Young's modulus of the guessed bulk modulus at ν = 0.3 (the projection removes shear).
    return 3 * g["bulk_modulus"] * (1 - 2 * 0.3), 0.3


def _bunny_2d(center: np.ndarray, size: float, dx: float, ppc: int) -> tuple[np.ndarray, float]:
    """Lattice particles inside a bunny-like silhouette (body, head, two ears) of about `size`²."""
    h = dx / math.sqrt(ppc)
    r = 0.7 * size  # the silhouette covers ≈ 2 r², the box size²
    parts = [  # (cx, cy, ax, ay) ellipses in units of r, relative to the centre
        (-0.15, -0.25, 0.75, 0.55),   # body
        (0.55, 0.2, 0.38, 0.35),      # head
        (0.45, 0.75, 0.1, 0.35),      # ear
        (0.72, 0.7, 0.1, 0.32),       # ear
        (-0.9, -0.3, 0.15, 0.15),     # tail
    ]
    lo, hi = center - 1.2 * r, center + 1.2 * r
    axes = [np.arange(lo[d] + h / 2, hi[d], h) for d in range(2)]
    p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    q = (p - center) / r
    inside = np.zeros(len(p), dtype=bool)
    for cx, cy, ax, ay in parts:
        inside |= ((q[:, 0] - cx) / ax) ** 2 + ((q[:, 1] - cy) / ay) ** 2 <= 1.0
    return p[inside], h * h


def _pos(spec: SceneSpec, *xy: float) -> tuple[float, ...]:
    return (*xy, 0.5)[: spec.dim] if spec.dim == 3 else tuple(xy)


def _vel(spec: SceneSpec, *v: float) -> tuple[float, ...]:
    return (*v, 0.0)[: spec.dim] if spec.dim == 3 else tuple(v)


def bodies_for_case(case: str, spec: SceneSpec, materials: dict[str, Any]) -> list:
    """The bodies of a case; `materials` maps "main" (and "partner" for ``multi``) to materials."""
    from physim.mpm import Body, Box, Sphere

    check_choice("case", case, CASES)
    s = spec.box
    y = FLOOR_HEIGHT + spec.gap + s / 2
    box = Box(center=_pos(spec, 0.4, y), size=(s,) * spec.dim)
    main = materials["main"]
    ppc = spec.particles_per_cell
    if case in ("train", "horizon"):
        return [Body(name="main", shape=box, material=main, velocity=_vel(spec, 1.0, -0.5), particles_per_cell=ppc)]
    if case == "shape":
        if spec.dim == 2:
            from physim.mpm.shapes import Particles

            pts, vol = _bunny_2d(np.array([0.4, y + 0.02]), s, 1.0 / spec.grid, ppc)
            shape = Particles(positions=pts, volume=vol)
        else:
            shape = Sphere(center=_pos(spec, 0.4, y + 0.02), radius=0.62 * s)
        return [Body(name="main", shape=shape, material=main, velocity=_vel(spec, 1.0, -0.5), particles_per_cell=ppc)]
    if case == "velocity":
        return [Body(name="main", shape=box, material=main, velocity=_vel(spec, -0.5, -2.0), particles_per_cell=ppc)]
    if case == "boundary":
        wall_box = Box(center=_pos(spec, 0.6, 0.5), size=(s,) * spec.dim)
        return [Body(name="main", shape=wall_box, material=main, velocity=_vel(spec, 2.5, 0.3),
                     particles_per_cell=ppc)]
    # multi: the material and its partner thrown at each other, meeting mid-air before landing.
    small = 0.8 * s
    left = Box(center=_pos(spec, 0.3, 0.38), size=(small,) * spec.dim)
    right = Box(center=_pos(spec, 0.68, 0.45), size=(small,) * spec.dim)
    return [Body(name="main", shape=left, material=main, velocity=_vel(spec, 1.5, 0.0), particles_per_cell=ppc),
            Body(name="partner", shape=right, material=materials["partner"], velocity=_vel(spec, -1.5, 0.0),
                 particles_per_cell=ppc)]


FLOOR_HEIGHT = 0.12
"""Height of the floor plane [m] (above the domain's own walls, which stay a backstop)."""
WALL_X = 0.85
"""Position of the boundary case's wall [m]."""
FRICTION = 0.3


def colliders_for_case(case: str, spec: SceneSpec) -> list:
    """The static plane colliders of a case: the floor, plus a vertical wall in the boundary case."""
    from physim.mpm import PlaneCollider

    check_choice("case", case, CASES)
    out = [PlaneCollider(name="floor", position=(0.0, FLOOR_HEIGHT, 0.0), normal=(0.0, 1.0, 0.0),
                         friction=FRICTION)]
    if case == "boundary":
        out.append(PlaneCollider(name="wall", position=(WALL_X, 0.0, 0.0), normal=(-1.0, 0.0, 0.0),
                                 friction=FRICTION))
    return out


def make_simulator(case: str, spec: SceneSpec, materials: dict[str, Any], *, dtype: str = "float32"):
    """A physim.mpm Simulator of `case` with the given materials."""
    from physim.mpm import Simulator

    return Simulator(spec.scene_config(dtype=dtype), bodies_for_case(case, spec, materials),
                     colliders_for_case(case, spec))
