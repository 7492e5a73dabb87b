"""Configuration and state of the mass-spring chain."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError

__all__ = ["ChainConfig", "ChainState"]


@dataclass(frozen=True, kw_only=True)
class ChainConfig:
    """A planar chain of point masses joined by damped springs, hanging under gravity.

    Particle 0 is pinned at the origin when `pinned` is true. Each control step
    applies a constant external force per particle for `substeps` semi-implicit
    Euler substeps of length `dt`. Arithmetic is float64 throughout: the chain is
    physim's reference system for gradient checks.
    """

    particle_count: int = 10
    """Number of point masses, at least 2."""
    rest_length: float = 0.1
    """Rest length of each spring [m]."""
    mass: float = 0.05
    """Mass of each particle [kg]."""
    stiffness: float = 200.0
    """Initial value of the spring stiffness parameter [N/m]."""
    damping: float = 0.2
    """Initial value of the spring damping parameter (along the spring) [N·s/m]."""
    drag: float = 0.0
    """Linear air drag per particle [N·s/m]."""
    gravity: float = 9.81
    """Gravitational acceleration, pointing to -y [m/s²]."""
    dt: float = 1e-3
    """Substep length [s]."""
    substeps: int = 10
    """Substeps per control step."""
    pinned: bool = True
    """Pin particle 0 at its initial position."""

    def __post_init__(self) -> None:
        check_int("particle_count", self.particle_count, 2, 10_000_000)
        check_positive("rest_length", self.rest_length)
        check_positive("mass", self.mass)
        check_range("stiffness", self.stiffness, 0.0)
        check_range("damping", self.damping, 0.0)
        check_range("drag", self.drag, 0.0)
        check_range("gravity", self.gravity)
        check_range("dt", self.dt, 0.0, 1.0, low_inclusive=False)
        check_int("substeps", self.substeps, 1, 100_000)
        if self.stiffness > 0:
            # Explicit integration of a spring is stable only for ω·dt < 2, with ω² = 4k/m at the
            # highest chain mode; refuse configurations that would blow up rather than return garbage.
            omega_dt = (4 * self.stiffness / self.mass) ** 0.5 * self.dt
            if omega_dt >= 1.0:
                raise ConfigError(
                    "dt",
                    self.dt,
                    f"dt < {self.mass**0.5 / (4 * self.stiffness) ** 0.5:.3g} s for stiffness={self.stiffness} N/m "
                    f"and mass={self.mass} kg (explicit stability, ω·dt < 1)",
                )

    @property
    def control_dt(self) -> float:
        """Duration of one control step [s]."""
        return self.dt * self.substeps


@dataclass(frozen=True)
class ChainState:
    """State of the chain.

    Attributes:
        x: Particle positions [m], shape (particle_count, 2).
        v: Particle velocities [m/s], shape (particle_count, 2).
        time: Simulated time [s], shape ().
    """

    x: torch.Tensor
    v: torch.Tensor
    time: torch.Tensor
