"""von Mises plasticine: Hencky elasticity with J2 return mapping on the Hencky strain.

With F = U diag(σ) Vᵀ, Hencky strain ε = log σ and its deviator ε̂ = ε − (tr ε / d) 1,
the Kirchhoff stress is τ = U diag(2μ ε + λ tr(ε) 1) Uᵀ [Pa] and its deviatoric norm is
‖dev τ‖ = 2μ ‖ε̂‖. The yield condition is ‖dev τ‖ ≤ √(2/3) σ_y (uniaxial yield stress
σ_y [Pa]). After each substep a trial state beyond yield is returned radially:

    ε ← (tr ε / d) 1 + k ε̂ / ‖ε̂‖,   k = √(2/3) σ_y / (2μ),

which keeps the volume (tr ε) and leaves the plastic deformation in F permanently.
Singular values are clamped at `sigma_min` before the logarithm (a degenerate
particle would otherwise give log 0); the clamp is a field, not a hidden constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from physim.config import check_positive, check_range
from physim.mpm.materials.base import COL_LAM, COL_MU, COL_P0, COL_RHO, KIND_VON_MISES, Material, check_nu, lame

__all__ = ["VonMises"]


@dataclass(frozen=True, kw_only=True)
class VonMises(Material):
    """Elasto-plastic plasticine (J2 plasticity on the Hencky strain).

    Example::

        VonMises(E=3e5, nu=0.25, yield_stress=5e3, density=1e3)
    """

    E: float = 3e5
    """Young's modulus [Pa], > 0."""
    nu: float = 0.25
    """Poisson's ratio, in (-1, 0.5)."""
    yield_stress: float = 5e3
    """Uniaxial yield stress σ_y [Pa], ≥ 0."""
    sigma_min: float = 0.05
    """Lower clamp of the singular values of F before taking logarithms (dimensionless)."""

    kind: ClassVar[int] = KIND_VON_MISES
    type_name: ClassVar[str] = "von_mises"
    param_names: ClassVar[tuple[str, ...]] = ("density", "E", "nu", "yield_stress")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("E", self.E)
        check_nu(self.nu)
        check_range("yield_stress", self.yield_stress, 0.0)
        check_range("sigma_min", self.sigma_min, 0.0, 1.0, low_inclusive=False)

    def table_row(self, p, dim):
        mu, lam = lame(p["E"], p["nu"])
        return {COL_RHO: p["density"], COL_MU: mu, COL_LAM: lam, COL_P0: p["yield_stress"],
                COL_P0 + 1: self.sigma_min + 0 * p["E"]}

    def wave_speed(self) -> float:
        mu, lam = lame(self.E, self.nu)
        return math.sqrt((lam + 2 * mu) / self.density)
