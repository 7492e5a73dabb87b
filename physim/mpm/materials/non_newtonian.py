"""Herschel–Bulkley viscoplastic fluid (mud, ketchup, ice cream, toothpaste).

The pressure is that of `NewtonianFluid` (Tait, bulk modulus K). The deviatoric
stress is viscous with an effective viscosity that depends on the shear rate
γ̇ = √(2 dev D : dev D) [1/s]:

    τ_dev = 2 η_eff dev D,   η_eff = k γ̇^{n−1} + τ_y (1 − exp(−m γ̇)) / γ̇,

with yield stress τ_y [Pa], consistency k [Pa·sⁿ], flow index n (< 1 shear
thinning, > 1 shear thickening) and Papanastasiou's regularisation m [s], which
makes the unyielded state a very viscous fluid instead of a singularity. η_eff is
capped at `max_viscosity` [Pa·s], the largest value the explicit update resolves at
the chosen dt (checked against the CFL bound on construction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from physim.config import check_positive, check_range
from physim.mpm.materials.base import COL_P0, COL_RHO, KIND_HERSCHEL_BULKLEY, Material

__all__ = ["NonNewtonianFluid"]


@dataclass(frozen=True, kw_only=True)
class NonNewtonianFluid(Material):
    """A Herschel–Bulkley fluid.

    Example::

        NonNewtonianFluid(yield_stress=50.0, consistency=5.0, flow_index=0.5, bulk_modulus=1e5)
    """

    bulk_modulus: float = 1e5
    """Bulk modulus K [Pa], > 0."""
    yield_stress: float = 50.0
    """Yield stress τ_y [Pa], ≥ 0 (0: power-law fluid)."""
    consistency: float = 1.0
    """Consistency k [Pa·sⁿ], ≥ 0."""
    flow_index: float = 1.0
    """Flow index n, > 0 (1 with τ_y = 0: Newtonian of viscosity k)."""
    regularization: float = 100.0
    """Papanastasiou exponent m [s], > 0."""
    max_viscosity: float = 10.0
    """Cap on the effective viscosity [Pa·s], > 0."""
    gamma: float = 1.0
    """Exponent of the Tait equation of state, ≥ 1."""

    kind: ClassVar[int] = KIND_HERSCHEL_BULKLEY
    type_name: ClassVar[str] = "non_newtonian"
    param_names: ClassVar[tuple[str, ...]] = ("density", "bulk_modulus", "yield_stress", "consistency",
                                              "flow_index")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("bulk_modulus", self.bulk_modulus)
        check_range("yield_stress", self.yield_stress, 0.0)
        check_range("consistency", self.consistency, 0.0)
        check_positive("flow_index", self.flow_index)
        check_positive("regularization", self.regularization)
        check_positive("max_viscosity", self.max_viscosity)
        check_range("gamma", self.gamma, 1.0, 20.0)

    def table_row(self, p, dim):
        z = 0 * p["bulk_modulus"]
        return {COL_RHO: p["density"], COL_P0: p["bulk_modulus"], COL_P0 + 1: p["yield_stress"],
                COL_P0 + 2: p["consistency"], COL_P0 + 3: p["flow_index"], COL_P0 + 4: self.regularization + z,
                COL_P0 + 5: self.max_viscosity + z, COL_P0 + 6: self.gamma + z}

    def wave_speed(self) -> float:
        return math.sqrt(self.bulk_modulus / self.density)

    def kinematic_viscosity(self) -> float:
        return self.max_viscosity / self.density
