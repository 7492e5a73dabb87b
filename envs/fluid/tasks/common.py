"""Materials and helpers shared by the task definitions.

Units are SI in FluidLab's unit-cube frame (y up). FluidLab's materials are dimensionless
(density 1, Lamé λ = 277.78, liquids' sound speed ≈ 17 m/s); physim uses kg/m³ and Pa with
a 10 m/s sound speed for every liquid (bulk modulus K = ρ·c²), the same at both quality
presets, which keeps the weakly compressible liquids within the CFL bound of the cpu preset
(dt = 1 ms at 3.1 cm cells) while density variations stay near 1 % at the flow speeds of
the tasks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from physim.mpm import NewtonianFluid

__all__ = ["SOUND_SPEED", "horizon_of", "liquid", "resolution", "velocities_from_path"]

#: Speed of sound of every liquid [m/s].
SOUND_SPEED = 10.0


def liquid(density: float, viscosity: float = 1e-3, bulk_viscosity: float = 1.0) -> NewtonianFluid:
    """A weakly compressible liquid of sound speed `SOUND_SPEED`.

    Args:
        density: [kg/m³].
        viscosity: Dynamic viscosity η [Pa·s]. FluidLab's viscous liquids (shear modulus 200 with
            F reset every 0.2 ms substep) behave as η ≈ μ·dt = 0.04 (density 1), i.e. 40 Pa·s at
            1000 kg/m³: that is the value of physim's viscous coffee and milk.
        bulk_viscosity: ζ [Pa·s], damps the acoustic ringing of weakly compressible liquids.
    """
    return NewtonianFluid(density=density, bulk_modulus=density * SOUND_SPEED**2, viscosity=viscosity,
                          bulk_viscosity=bulk_viscosity)


def velocities_from_path(path: Callable[[np.ndarray], np.ndarray], horizon: int, control_dt: float) -> np.ndarray:
    """Per-step velocities (horizon, k) that follow ``path(s)`` at s = t / horizon, t = 0..horizon."""
    s = np.arange(horizon + 1) / horizon
    p = np.asarray(path(s), dtype=np.float64)
    return np.diff(p, axis=0) / control_dt


def resolution(quality, dim: int = 3, control_dt: float = 2e-3) -> dict:
    """The `TaskSpec` fields a quality preset sets: grid spacing, substeps, particle density, observation size."""
    dx, dt = (quality.dx, quality.dt) if dim == 3 else (quality.dx_2d, quality.dt_2d)
    return {"dim": dim, "dx": dx, "dt": dt, "substeps": round(control_dt / dt), "control_dt": control_dt,
            "particles_per_cell": quality.particles_per_cell,
            "emitted_particles_per_cell": quality.emitted_particles_per_cell,
            "obs_particles": quality.obs_particles}


def horizon_of(name: str, horizon: int | None) -> int:
    """The task's horizon (`registry.HORIZONS`) or a shorter override."""
    from physim.envs.fluid.registry import HORIZONS

    return HORIZONS[name] if horizon is None else int(horizon)
