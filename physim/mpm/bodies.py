"""Bodies: a shape filled with particles of one material."""

from __future__ import annotations

import math
from dataclasses import dataclass

from physim.config import check_choice, check_int
from physim.errors import ConfigError
from physim.mpm.materials.base import Material
from physim.mpm.shapes import Shape

__all__ = ["Body"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Body:
    """A body of the scene. Several bodies with different materials share one grid.

    Example::

        Body(name="jelly", shape=Box(center=(0.5, 0.3, 0.5), size=(0.2, 0.2, 0.2)),
             material=Elastic(E=1e5, nu=0.2), velocity=(0.0, -1.0, 0.0))
    """

    shape: Shape
    """Region filled with particles."""
    material: Material
    """Constitutive law and its parameters."""
    name: str = ""
    """Unique name (default ``body<i>``); parameters appear as ``"<name>.<param>"`` in `Simulator.params`."""
    velocity: tuple[float, ...] | None = None
    """Initial velocity [m/s], length dim; None: at rest."""
    particles_per_cell: int | None = None
    """Particles per grid cell; None: 2^dim."""
    sampling: str = "lattice"
    """``"lattice"`` (regular sub-grid) or ``"random"`` (uniform, seeded)."""

    def __post_init__(self) -> None:
        if not isinstance(self.shape, Shape):
            raise ConfigError("shape", type(self.shape).__name__, "a Box, Sphere, Cylinder or Mesh")
        if not isinstance(self.material, Material):
            raise ConfigError("material", type(self.material).__name__, "a physim.mpm material")
        if self.particles_per_cell is not None:
            check_int("particles_per_cell", self.particles_per_cell, 1, 1000)
        check_choice("sampling", self.sampling, ("lattice", "random"))
        if self.velocity is not None:
            try:
                ok = all(math.isfinite(float(c)) for c in self.velocity)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError("velocity", self.velocity, "a sequence of finite numbers [m/s]")
