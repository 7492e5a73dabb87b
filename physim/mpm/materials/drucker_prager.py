"""Drucker–Prager sand (Klár et al. 2016): Hencky elasticity and a cone-shaped yield surface.

With F = U diag(σ) Vᵀ the elastic deformation gradient, ε = log σ (Hencky strain, length d),
ε̂ = ε − (tr ε / d) 1, Lamé parameters μ, λ [Pa], friction angle φ, cohesion c [Pa] and

    α = √(2/3) · 2 sin φ / (3 − sin φ)  (3D, Klár et al.),   α = (3/2) · that  (2D, plane strain),
    β = α (d λ + 2μ) / (2μ),   t_c = d c / (d λ + 2μ),   Δγ = ‖ε̂‖ + β (tr ε − t_c),

the return mapping after each substep is

- tr ε > t_c (tension beyond the apex): ε ← (t_c / d) 1 (the grains separate),
- else Δγ > 0: ε ← ε − Δγ ε̂ / ‖ε̂‖ (shear back to the cone, volume kept: zero dilatancy),
- else: elastic, unchanged.

The Kirchhoff stress is the Hencky one of `VonMises`: τ = U diag(2μ ε + λ tr ε 1) Uᵀ [Pa], so
the yield surface is ‖dev τ‖ ≤ −α (tr τ − d c). See `friction_alpha` for the 2D cone and
docs/mpm.md ("Sand") for why it sets the angle of repose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from physim.config import check_positive, check_range
from physim.mpm.materials.base import (
    COL_LAM,
    COL_MU,
    COL_P0,
    COL_RHO,
    KIND_DRUCKER_PRAGER,
    Material,
    check_nu,
    lame,
)

__all__ = ["DruckerPrager", "friction_alpha"]


def friction_alpha(friction_angle_deg, dim: int = 3):
    """Cone slope α of the Drucker–Prager surface ‖dev τ‖ ≤ −α tr τ for a friction angle φ [degrees].

    3D: α₃ = √(2/3) · 2 sin φ / (3 − sin φ), Klár et al.'s cone through Mohr–Coulomb's
    triaxial-compression corners.

    2D: α₂ = (3/2) α₃ = √6 sin φ / (3 − sin φ), the same material in plane strain. While the
    sand flows, the return mapping's plastic strain is deviatoric and along dev τ, so zero
    out-of-plane plastic strain means dev τ_zz = 0, i.e. τ_zz = (τ_xx + τ_yy)/2; then the
    3D ‖dev τ‖ equals the in-plane one and tr₃ τ = (3/2) tr₂ τ, so the 3D cone reads
    ‖dev₂ τ‖ ≤ −(3/2) α₃ tr₂ τ in the plane. (The cone α₂ = sin φ/√2 of 2D Mohr–Coulomb is
    weaker: with this volume-preserving flow rule its shear bands mobilise only
    atan(sin φ), 26.6° for φ = 30°, and a collapsed column settled at 21°.)

    Args:
        friction_angle_deg: φ [degrees], float or torch tensor (differentiable).
        dim: 2 or 3.

    Returns:
        α (dimensionless), same type as ``friction_angle_deg``.
    """
    if isinstance(friction_angle_deg, torch.Tensor):
        s = torch.sin(torch.deg2rad(friction_angle_deg))
    else:
        s = math.sin(math.radians(friction_angle_deg))
    alpha3 = math.sqrt(2.0 / 3.0) * 2.0 * s / (3.0 - s)
    return 1.5 * alpha3 if dim == 2 else alpha3


@dataclass(frozen=True, kw_only=True)
class DruckerPrager(Material):
    """Granular material (dry sand).

    Example::

        DruckerPrager(E=1e6, nu=0.2, friction_angle=30.0, density=1.6e3)
    """

    E: float = 1e6
    """Young's modulus [Pa], > 0."""
    nu: float = 0.2
    """Poisson's ratio, in (-1, 0.5)."""
    friction_angle: float = 30.0
    """Internal friction angle φ [degrees], in [0, 90)."""
    cohesion: float = 0.0
    """Mean tensile Kirchhoff stress the material bears [Pa], ≥ 0 (0: dry sand)."""
    sigma_min: float = 0.05
    """Lower clamp of the singular values of F before taking logarithms (dimensionless)."""

    kind: ClassVar[int] = KIND_DRUCKER_PRAGER
    type_name: ClassVar[str] = "drucker_prager"
    param_names: ClassVar[tuple[str, ...]] = ("density", "E", "nu", "friction_angle", "cohesion")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("E", self.E)
        check_nu(self.nu)
        check_range("friction_angle", self.friction_angle, 0.0, 90.0, high_inclusive=False)
        check_range("cohesion", self.cohesion, 0.0)
        check_range("sigma_min", self.sigma_min, 0.0, 1.0, low_inclusive=False)

    def table_row(self, p, dim):
        mu, lam = lame(p["E"], p["nu"])
        return {COL_RHO: p["density"], COL_MU: mu, COL_LAM: lam, COL_P0: friction_alpha(p["friction_angle"], dim),
                COL_P0 + 1: p["cohesion"], COL_P0 + 2: self.sigma_min + 0 * p["E"]}

    def wave_speed(self) -> float:
        mu, lam = lame(self.E, self.nu)
        return math.sqrt((lam + 2 * mu) / self.density)
