"""A learned material as one file: elastic law + optional plastic projection + density.

`NeuralConstitutiveLaw` bundles the two modules so that a trained material is saved
and loaded as a unit (weights, constructor arguments of both parts, physim and NCLaw
versions), and turns into a `physim.mpm` material for any scene::

    law = NeuralConstitutiveLaw(elastic={"name": "nclaw-invariant", "kwargs": {"dim": 2}},
                                plastic={"name": "nclaw-plastic", "kwargs": {"dim": 2}},
                                density=1e3)
    law.save("runs/nclaw/plasticine/law.pt")
    material = load_material("runs/nclaw/plasticine/law.pt")   # a physim.mpm NeuralMaterial
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from physim.operators.base import OperatorBase, OperatorFileError, load_operator
from physim.operators.nclaw.baselines import PlainMLPPlasticity, PlainMLPStress
from physim.operators.nclaw.equivariant import E3nnElasticLaw
from physim.operators.nclaw.invariant import InvariantElasticLaw
from physim.operators.nclaw.plastic import NeuralPlasticity

from physim.config import check_positive
from physim.errors import ConfigError

__all__ = ["ELASTIC_LAWS", "LAW_VERSION", "PLASTIC_LAWS", "NeuralConstitutiveLaw", "load_law", "load_material"]

LAW_VERSION = 1
"""Version of the NCLaw law layout; a file written with another version is refused by name."""

ELASTIC_LAWS = {c.operator_name: c for c in (InvariantElasticLaw, E3nnElasticLaw, PlainMLPStress)}
PLASTIC_LAWS = {c.operator_name: c for c in (NeuralPlasticity, PlainMLPPlasticity)}


def _spec(field: str, spec: Any, table: dict) -> tuple[type, dict]:
    if not isinstance(spec, dict) or set(spec) - {"name", "kwargs"} or spec.get("name") not in table:
        raise ConfigError(field, spec, "{'name': one of " + ", ".join(map(repr, table)) + ", 'kwargs': {...}}")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{field}.kwargs", kwargs, "a dict of constructor arguments")
    return table[spec["name"]], kwargs


class NeuralConstitutiveLaw(OperatorBase, name="nclaw"):
    """A learned material: elastic stress module, optional plastic projection, density.

    Args:
        elastic: ``{"name": "nclaw-invariant" | "nclaw-e3nn" | "nclaw-mlp", "kwargs": {...}}``.
        plastic: ``{"name": "nclaw-plastic" | "nclaw-mlp-plastic", "kwargs": {...}}`` or None.
        density: Mass density [kg/m³] of the material in its reference state.
        label: Free-form name (e.g. the material it was trained on).
        version: Layout version; must equal `LAW_VERSION`.
    """

    def __init__(self, *, elastic: dict, plastic: dict | None = None, density: float = 1000.0,
                 label: str = "", version: int = LAW_VERSION):
        super().__init__()
        if version != LAW_VERSION:
            raise ConfigError("version", version, f"NCLaw law layout {LAW_VERSION}")
        check_positive("density", density)
        cls, kwargs = _spec("elastic", elastic, ELASTIC_LAWS)
        self.stress = cls(**kwargs)
        self.plastic = None
        if plastic is not None:
            pcls, pkwargs = _spec("plastic", plastic, PLASTIC_LAWS)
            self.plastic = pcls(**pkwargs)
            if self.plastic.dim != self.stress.dim:
                raise ConfigError("plastic.kwargs.dim", self.plastic.dim, f"the elastic law's dim {self.stress.dim}")
        self.density = float(density)
        self.label = label

    @classmethod
    def from_parts(cls, stress: OperatorBase, plastic: OperatorBase | None = None, *, density: float = 1000.0,
                   label: str = "") -> NeuralConstitutiveLaw:
        """Bundle existing (possibly trained) modules; their weights are copied."""
        spec = {"name": stress.operator_name, "kwargs": stress.metadata()["kwargs"]}
        pspec = None if plastic is None else {"name": plastic.operator_name, "kwargs": plastic.metadata()["kwargs"]}
        law = cls(elastic=spec, plastic=pspec, density=density, label=label)
        law.stress.load_state_dict(stress.state_dict())
        if plastic is not None:
            law.plastic.load_state_dict(plastic.state_dict())
        return law.to(next(stress.parameters()).dtype)

    @property
    def dim(self) -> int:
        return self.stress.dim

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        """First Piola–Kirchhoff stress P(F) [Pa], shape (..., d, d)."""
        return self.stress(F)

    def project(self, F: torch.Tensor) -> torch.Tensor:
        """Plastic projection of a trial F (identity without a plastic part)."""
        return F if self.plastic is None else self.plastic(F)

    def wave_speed_bound(self, *, safety: float = 2.0, probe_strain: float = 0.05) -> float:
        """An upper estimate of the wave speed [m/s] for the CFL check.

        The learned part can stiffen the law beyond its linear skeleton, so the tangent is
        probed numerically along uniaxial and shear strains up to `probe_strain` and the
        largest secant modulus, times `safety`, gives sqrt(M/ρ).
        """
        d = self.dim
        p = next(self.stress.parameters())
        eye = torch.eye(d, dtype=p.dtype, device=p.device)
        largest = 0.0
        with torch.no_grad():
            for k in range(1, 5):
                h = probe_strain * k / 4
                for i in range(d):
                    for j in range(d):
                        H = torch.zeros(d, d, dtype=p.dtype, device=p.device)
                        H[i, j] = h
                        P = self.stress((eye + H)[None])[0]
                        largest = max(largest, float(P[i, j].abs()) / h)
        return safety * math.sqrt(max(largest, 1e-12) / self.density)

    def material(self, **overrides: Any):
        """This law as a `physim.mpm` material (a `NeuralMaterial` sharing these modules)."""
        from physim.mpm import NeuralMaterial

        kw = {"stress": self.stress, "plastic": self.plastic, "density": self.density,
              "wave_speed_bound": self.wave_speed_bound(), "extra": {"nclaw": self.metadata()}}
        kw.update(overrides)
        return NeuralMaterial(**kw)


def load_law(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> NeuralConstitutiveLaw:
    """Load a law saved with `NeuralConstitutiveLaw.save`.

    Raises:
        OperatorFileError: naming the file, when it is missing, truncated, not an NCLaw law,
            or from an incompatible version.
    """
    try:
        law = load_operator(path, map_location=map_location)
    except (ConfigError, TypeError) as exc:
        raise OperatorFileError(path, f"incompatible NCLaw law ({exc})") from None
    if not isinstance(law, NeuralConstitutiveLaw):
        raise OperatorFileError(path, f"holds operator {law.operator_name!r}, not an NCLaw law ('nclaw')")
    return law


def load_material(path: str | os.PathLike, **overrides: Any):
    """Load a learned law file as a `physim.mpm` material, ready for any scene."""
    return load_law(path).material(**overrides)
