"""Quality presets of the fluid suite: ``cpu`` (small, for laptops and CI) and ``paper`` (FluidLab's resolution).

Only resolution changes between presets: geometry, materials, action bounds, horizons and
control step (2 ms, FluidLab's ten 0.2 ms substeps) are the same, so a trajectory optimised
at ``cpu`` quality replays at ``paper`` quality with the same meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from physim.config import check_int, check_positive
from physim.errors import ConfigError

__all__ = ["QUALITIES", "Quality", "get_quality"]


@dataclass(frozen=True, kw_only=True)
class Quality:
    """Resolution of one preset.

    3D scenes use `dx`, `dt`; planar scenes (FluidLab's slab tasks, simulated in 2D) use
    `dx_2d`, `dt_2d`. Substeps per control step are ``control_dt / dt``.
    """

    name: str
    """Preset name."""
    dx: float
    """Grid spacing of 3D scenes [m] (the unit cube has 1/dx cells per axis)."""
    dt: float
    """MPM substep of 3D scenes [s]."""
    dx_2d: float
    """Grid spacing of planar scenes [m]."""
    dt_2d: float
    """MPM substep of planar scenes [s]."""
    particles_per_cell: int
    """Particles per cell of the bodies present at the start."""
    emitted_particles_per_cell: int
    """Particles per cell of emitted (injected) material: thin jets need more than bulk liquid."""
    obs_particles: int
    """Particles observed per body (evenly spaced subset, as FluidLab's subsampling)."""
    gas: str
    """Preset of the gas grid (Circulation), see ``physim.gas.circulation_config``."""

    def __post_init__(self) -> None:
        for f in ("dx", "dt", "dx_2d", "dt_2d"):
            check_positive(f, getattr(self, f))
        check_int("particles_per_cell", self.particles_per_cell, 1, 64)
        check_int("emitted_particles_per_cell", self.emitted_particles_per_cell, 1, 64)
        check_int("obs_particles", self.obs_particles, 1, 100_000)


QUALITIES: dict[str, Quality] = {
    # 32 cells per metre, two 1 ms substeps per 2 ms control step (CFL ≈ 0.32 at the 10 m/s sound speed
    # of the liquids); planar scenes at 64 cells per metre, four 0.5 ms substeps.
    "cpu": Quality(name="cpu", dx=1 / 32, dt=1e-3, dx_2d=1 / 64, dt_2d=5e-4, particles_per_cell=4,
                   emitted_particles_per_cell=8, obs_particles=200, gas="cpu"),
    # FluidLab: 64³ grid over the unit cube, 2e-4 s substeps, 1e6 particles/m³ (≈ 3.8 per cell).
    "paper": Quality(name="paper", dx=1 / 64, dt=2e-4, dx_2d=1 / 128, dt_2d=1e-4, particles_per_cell=4,
                     emitted_particles_per_cell=8, obs_particles=1000, gas="paper"),
}


def get_quality(quality: str | Quality) -> Quality:
    """The preset named `quality` (or `quality` itself); `ConfigError` for an unknown name."""
    if isinstance(quality, Quality):
        return quality
    if not isinstance(quality, str) or quality not in QUALITIES:
        raise ConfigError("quality", quality, "one of " + ", ".join(repr(q) for q in QUALITIES))
    return QUALITIES[quality]
