"""What every material shares: the kernel's material codes, the parameter table, CFL speeds.

Each body's material becomes one row of a per-body parameter table, built in torch
from ``Simulator.params`` (so gradients reach E, ν, yield stress, ...), and a kind
code the fused transfer kernels branch on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from physim.config import check_positive
from physim.errors import ConfigError

__all__ = [
    "COL_LAM",
    "COL_MU",
    "COL_P0",
    "COL_RHO",
    "ELASTIC_STRESS",
    "HAND_WRITTEN_PROJECTION",
    "HAND_WRITTEN_STRESS",
    "KIND_COROTATED",
    "KIND_DRUCKER_PRAGER",
    "KIND_HERSCHEL_BULKLEY",
    "KIND_NEOHOOKEAN",
    "KIND_NEURAL",
    "KIND_NEWTONIAN",
    "KIND_RIGID",
    "KIND_STVK",
    "KIND_VON_MISES",
    "LAW_MASK",
    "STORED_STRESS",
    "TABLE_WIDTH",
    "TORCH_PROJECTION",
    "Material",
    "lame",
]

# Law codes the kernels branch on (kind & LAW_MASK); TORCH_PROJECTION marks a body whose
# plastic projection is done in torch after the grid-to-particle kernel (NeuralMaterial).
KIND_COROTATED = 0
KIND_NEOHOOKEAN = 1
KIND_STVK = 2
KIND_VON_MISES = 3
KIND_DRUCKER_PRAGER = 4
KIND_NEWTONIAN = 5
KIND_HERSCHEL_BULKLEY = 6
KIND_RIGID = 7
KIND_NEURAL = 8
LAW_MASK = 15
TORCH_PROJECTION = 16
# Laws whose stress has a hand-written adjoint on the taped path: the elastic ones
# (`elastic_kernels.stress_elastic`) and the stored ones (`taped_kernels.stress_stored`: fluid,
# von Mises, rigid); the others' taped stress keeps Warp's automatic adjoint.
ELASTIC_STRESS = frozenset({KIND_COROTATED, KIND_NEOHOOKEAN, KIND_STVK})
STORED_STRESS = frozenset({KIND_NEWTONIAN, KIND_VON_MISES, KIND_RIGID})
HAND_WRITTEN_STRESS = ELASTIC_STRESS | STORED_STRESS
# Laws whose plastic projection has a hand-written adjoint (`taped_kernels.project_stored`); a scene
# with another projecting law (Drucker–Prager, Herschel–Bulkley) keeps Warp's for all its particles.
HAND_WRITTEN_PROJECTION = frozenset({KIND_VON_MISES, KIND_NEWTONIAN})

# Columns of the per-body table: density, Lamé μ and λ, then law-specific parameters.
COL_RHO, COL_MU, COL_LAM, COL_P0 = 0, 1, 2, 3
TABLE_WIDTH = 10


def lame(E, nu):
    """Lamé parameters (μ, λ) [Pa] from Young's modulus E [Pa] and Poisson's ratio ν (floats or tensors)."""
    mu = E / (2 * (1 + nu))
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    return mu, lam


@dataclass(frozen=True, kw_only=True)
class Material:
    """Base class of the constitutive laws.

    Subclasses declare their differentiable parameters as float fields listed in
    `param_names`; `Simulator.params` holds one scalar tensor per body and name
    (``"<body>.<name>"``).
    """

    density: float = 1000.0
    """Mass density in the reference configuration [kg/m³]."""

    kind: ClassVar[int] = -1
    type_name: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ("density",)

    def __post_init__(self) -> None:
        check_positive("density", self.density)
        # numbers given as strings or ints (e.g. from a file) become floats once validated by the subclass
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and isinstance(value, (int, str)) and not isinstance(value, bool):
                try:
                    object.__setattr__(self, f.name, float(value))
                except ValueError:
                    raise ConfigError(f.name, value, "a number") from None

    # -- used by the simulator -----------------------------------------------------------------
    def initial_params(self) -> dict[str, float]:
        """Initial values of the differentiable parameters."""
        return {name: float(getattr(self, name)) for name in self.param_names}

    def table_row(self, p: dict[str, torch.Tensor], dim: int) -> dict[int, torch.Tensor]:
        """Columns of this body's table row from its parameter tensors (differentiable)."""
        return {COL_RHO: p["density"]}

    def wave_speed(self) -> float:
        """Fastest elastic/acoustic wave speed [m/s] at rest, for the CFL bound."""
        return 0.0

    def kinematic_viscosity(self) -> float:
        """Largest kinematic viscosity [m²/s] the explicit viscous update must resolve."""
        return 0.0

    def describe(self) -> dict:
        """Type name and every field, for HDF5 metadata and logs."""
        out = {"type": self.type_name}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float, str, bool)) or value is None:
                out[f.name] = value
            elif isinstance(value, Material):
                out[f.name] = value.describe()
            else:
                out[f.name] = type(value).__name__
        return out


def check_nu(nu: float) -> None:
    """Poisson's ratio must lie in the open interval (-1, 0.5)."""
    try:
        ok = math.isfinite(float(nu)) and -1.0 < float(nu) < 0.5
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError("nu", nu, "a Poisson's ratio in the open interval (-1, 0.5)")
