"""Hyperelastic solids: fixed corotated, neo-Hookean, St. Venant–Kirchhoff.

With F the deformation gradient, J = det F, R the rotation of F = R S and
E = ½(FᵀF − I), the Kirchhoff stress τ = P Fᵀ [Pa] of each model is

- fixed corotated (Stomakhin et al. 2012): τ = 2μ (F − R) Fᵀ + λ J (J − 1) I
- neo-Hookean (compressible, log J):        τ = μ (F Fᵀ − I) + λ log(J) I
- St. Venant–Kirchhoff:                     τ = F (2μ E + λ tr(E) I) Fᵀ

with Lamé parameters μ = E / (2(1 + ν)), λ = E ν / ((1 + ν)(1 − 2ν)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from physim.config import check_choice, check_positive
from physim.mpm.materials.base import (
    COL_LAM,
    COL_MU,
    COL_RHO,
    KIND_COROTATED,
    KIND_NEOHOOKEAN,
    KIND_STVK,
    Material,
    check_nu,
    lame,
)

__all__ = ["Elastic"]

_KINDS = {"corotated": KIND_COROTATED, "neohookean": KIND_NEOHOOKEAN, "stvk": KIND_STVK}


@dataclass(frozen=True, kw_only=True)
class Elastic(Material):
    """An elastic solid (jelly, rubber).

    Example::

        Elastic(E=1e5, nu=0.2, density=1e3, model="corotated")
    """

    E: float = 1e5
    """Young's modulus [Pa], > 0."""
    nu: float = 0.2
    """Poisson's ratio, in (-1, 0.5)."""
    model: str = "corotated"
    """``"corotated"`` (fixed corotated), ``"neohookean"`` or ``"stvk"``."""

    type_name: ClassVar[str] = "elastic"
    param_names: ClassVar[tuple[str, ...]] = ("density", "E", "nu")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("E", self.E)
        check_nu(self.nu)
        check_choice("model", self.model, tuple(_KINDS))

    @property
    def kind(self) -> int:  # type: ignore[override]
        return _KINDS[self.model]

    def table_row(self, p, dim):
        mu, lam = lame(p["E"], p["nu"])
        return {COL_RHO: p["density"], COL_MU: mu, COL_LAM: lam}

    def wave_speed(self) -> float:
        mu, lam = lame(self.E, self.nu)
        return math.sqrt((lam + 2 * mu) / self.density)
