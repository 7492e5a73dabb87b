"""A constitutive law computed by torch modules inside every substep (the NCLaw slot).

Each substep the simulator hands the module zero-copy torch views of the body's
deformation gradients and uses what it returns inside the Warp transfers:

- ``stress(F) -> P``: first Piola–Kirchhoff stress [Pa], shapes (n, d, d) → (n, d, d);
  the grid receives the Kirchhoff stress τ = P Fᵀ. When `stress` is None the stress
  comes from the classical `elastic` law (computed in Warp).
- ``plastic(F_trial) -> F``: the plastic projection applied after the
  grid-to-particle transfer, (n, d, d) → (n, d, d); None keeps F_trial.

Gradients reach the modules' parameters: `Simulator.rollout` passes them to the
checkpointed rollout explicitly (``torch.func.functional_call``), so they survive
recomputation. `polar` is a rotation with a backward that stays finite when singular
values coincide (torch's SVD backward does not), for rotation-equivariant laws such
as NCLaw's P = R X.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from physim.config import check_positive
from physim.errors import ConfigError
from physim.mpm.materials.base import KIND_NEURAL, TORCH_PROJECTION, Material

__all__ = ["NeuralMaterial", "polar"]


@dataclass(frozen=True, kw_only=True, eq=False)
class NeuralMaterial(Material):
    """A learned material: torch modules for the stress and/or the plastic projection.

    Example (a tiny MLP stress on top of a corotated-like frame)::

        class Law(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(9, 16), torch.nn.Tanh(), torch.nn.Linear(16, 9))
            def forward(self, F):
                return 1e4 * self.net((F - torch.eye(3)).flatten(1)).view(-1, 3, 3)

        NeuralMaterial(stress=Law(), density=1e3, wave_speed=10.0)
    """

    stress: torch.nn.Module | None = None
    """Module F (n, d, d) → first Piola–Kirchhoff stress P [Pa] (n, d, d); None: use `elastic`."""
    plastic: torch.nn.Module | None = None
    """Module F_trial (n, d, d) → projected F (n, d, d); None: no plasticity."""
    elastic: Material | None = None
    """Classical law giving the stress (and density, CFL speed) when `stress` is None."""
    wave_speed_bound: float = 0.0
    """Upper bound of the learned law's wave speed [m/s], for the CFL check (with `stress`)."""
    extra: dict = field(default_factory=dict)
    """Free-form metadata written to trajectory files."""

    type_name: ClassVar[str] = "neural"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stress is None and self.elastic is None:
            raise ConfigError("stress", None, "a torch.nn.Module, or an `elastic` material when stress is None")
        if self.stress is not None and not isinstance(self.stress, torch.nn.Module):
            raise ConfigError("stress", type(self.stress).__name__, "a torch.nn.Module or None")
        if self.plastic is not None and not isinstance(self.plastic, torch.nn.Module):
            raise ConfigError("plastic", type(self.plastic).__name__, "a torch.nn.Module or None")
        if self.elastic is not None and isinstance(self.elastic, NeuralMaterial):
            raise ConfigError("elastic", "NeuralMaterial", "a classical material (Elastic, VonMises, ...)")
        if self.stress is not None:
            check_positive("wave_speed_bound", self.wave_speed_bound)

    @property
    def kind(self) -> int:  # type: ignore[override]
        law = KIND_NEURAL if self.stress is not None else self.elastic.kind
        return law | (TORCH_PROJECTION if self.plastic is not None else 0)

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.elastic.param_names if (self.stress is None and self.elastic is not None) else ("density",)

    def initial_params(self):
        if self.stress is None:
            return self.elastic.initial_params()
        return {"density": float(self.density)}

    def table_row(self, p, dim):
        if self.stress is None:
            return self.elastic.table_row(p, dim)
        return super().table_row(p, dim)

    def wave_speed(self) -> float:
        return self.elastic.wave_speed() if self.stress is None else self.wave_speed_bound

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules of this law (stress first)."""
        return [m for m in (self.stress, self.plastic) if m is not None]


class _Polar(torch.autograd.Function):
    @staticmethod
    def forward(ctx, F):
        U, s, Vh = torch.linalg.svd(F)
        # A proper rotation: flip the last singular pair when det F < 0.
        det = torch.linalg.det(U @ Vh)
        flip = torch.ones_like(s)
        flip[..., -1] = det
        U = U * flip[..., None, :]
        s = s * flip
        R = U @ Vh
        ctx.save_for_backward(U, s, Vh)
        return R

    @staticmethod
    def backward(ctx, gR):
        U, s, Vh = ctx.saved_tensors
        V = Vh.transpose(-1, -2)
        G = U.transpose(-1, -2) @ gR @ V
        skew = 0.5 * (G - G.transpose(-1, -2))
        denom = s[..., :, None] + s[..., None, :]
        tiny = torch.finfo(s.dtype).eps ** 0.5
        denom = torch.where(denom.abs() < tiny, torch.full_like(denom, tiny), denom)
        P = 2.0 * skew / denom
        return U @ P @ Vh


def polar(F: torch.Tensor) -> torch.Tensor:
    """Rotation R of F = R S, shape (..., d, d), with a backward finite for coincident singular values.

    The derivative is dR = R V Ω Vᵀ with Ω_ij = (Vᵀ(RᵀdF − dFᵀR)V)_ij / (σ_i + σ_j):
    only sums of singular values appear, never differences.
    """
    return _Polar.apply(F)
