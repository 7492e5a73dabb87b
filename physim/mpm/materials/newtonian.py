"""Weakly compressible Newtonian fluid (water).

The particle keeps only its volume ratio J = det F (F is reset to J^{1/d} I after
each substep, so no shear memory builds up). With the velocity gradient C (APIC),
D = ½(C + Cᵀ) and the Tait equation of state of exponent γ,

    p = (K / γ) (J^{−γ} − 1),   τ = J (−p I + 2η dev D + ζ tr(D) I)   (Kirchhoff stress [Pa]),

K the bulk modulus [Pa], η the dynamic viscosity [Pa·s] and ζ the bulk viscosity
[Pa·s] (damps acoustic waves: a column dropped into place rings at the speed of sound
otherwise, since shear viscosity does not act on compression). With γ = 1 the pressure
part is τ = K (J − 1) I, the law of the Taichi ``mpm3d`` example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from physim.config import check_positive, check_range
from physim.mpm.materials.base import COL_P0, COL_RHO, KIND_NEWTONIAN, Material

__all__ = ["NewtonianFluid"]


@dataclass(frozen=True, kw_only=True)
class NewtonianFluid(Material):
    """A weakly compressible fluid; ``viscosity=0`` is inviscid.

    Example::

        NewtonianFluid(bulk_modulus=2e5, viscosity=1e-3, density=1e3)
    """

    bulk_modulus: float = 1e5
    """Bulk modulus K [Pa], > 0 (sets the speed of sound √(K/ρ); keep it ≫ ρ g h)."""
    viscosity: float = 0.0
    """Dynamic viscosity η [Pa·s], ≥ 0."""
    bulk_viscosity: float = 0.0
    """Bulk viscosity ζ [Pa·s], ≥ 0."""
    gamma: float = 1.0
    """Exponent of the Tait equation of state, ≥ 1 (1: linear in 1/J; 7: water-like)."""

    kind: ClassVar[int] = KIND_NEWTONIAN
    type_name: ClassVar[str] = "newtonian"
    param_names: ClassVar[tuple[str, ...]] = ("density", "bulk_modulus", "viscosity")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("bulk_modulus", self.bulk_modulus)
        check_range("viscosity", self.viscosity, 0.0)
        check_range("bulk_viscosity", self.bulk_viscosity, 0.0)
        check_range("gamma", self.gamma, 1.0, 20.0)

    def table_row(self, p, dim):
        return {COL_RHO: p["density"], COL_P0: p["bulk_modulus"], COL_P0 + 1: p["viscosity"],
                COL_P0 + 2: self.gamma + 0 * p["bulk_modulus"], COL_P0 + 3: self.bulk_viscosity + 0 * p["bulk_modulus"]}

    def wave_speed(self) -> float:
        return math.sqrt(self.bulk_modulus / self.density)

    def kinematic_viscosity(self) -> float:
        return (self.viscosity + self.bulk_viscosity) / self.density
