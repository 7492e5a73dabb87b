"""FluidLab's Circulation air grid as physim configurations, at two qualities.

FluidLab (``CirculationEnv``): a 128³ smoke field over the unit cube, dt 0.03 per
environment step, 50 Jacobi iterations warm-started from the last pressure, RK3
semi-Lagrangian advection, one scalar (temperature, 1 = hot) that starts hot in the
free slab, and an "aircon" that pushes cold air: velocity += dt · s · dir · exp(−|x−c|/r)
and temperature → (1 − w) T + w · 0 with w = exp(−|x−c|/r). Only the horizontal slab
of y-cells 61..67 is free; the room's walls inside it come from a mesh (``room.obj``)
that the task supplies as more solid cells.
"""

from __future__ import annotations

import dataclasses

import torch

from physim.config import check_choice
from physim.gas.config import FanConfig, GasConfig
from physim.gas.geometry import slab_mask

__all__ = ["QUALITIES", "circulation_config", "circulation_solid"]

QUALITIES = ("cpu", "paper")

# FluidLab's free slab: y-cells 60 < j < 68 of 128, i.e. y in [61/128, 68/128] m.
_SLAB = (61 / 128, 68 / 128)
# FluidLab's aircon in its own grid units (cells, cells/s²): action 0.02 × scale 1e5 and 0.04 × scale 50.
_STRENGTH_CELLS, _RADIUS_CELLS = 2000.0, 2.0


def circulation_config(quality: str = "paper", *, slab: bool = False, **overrides) -> GasConfig:
    """The Circulation air grid: ``"paper"`` = FluidLab's 128³; ``"cpu"`` = 32³ for a 2-core machine.

    Args:
        quality: ``"paper"`` or ``"cpu"``.
        slab: False: the whole cube, to be used with `circulation_solid` (FluidLab's
            layout). True: only the free slab (128 × 7 × 128 at paper quality, 32 × 2 × 32
            at cpu quality), placed at its height through `GasConfig.origin`. Both give the
            same flow, since solid cells carry nothing; the slab grid costs ~18× less.
        overrides: Any `GasConfig` field to change (e.g. ``dtype="float64"``).

    The fan row (one "aircon") starts at the pose FluidLab's optimiser starts from
    (0.55, 0.5, 0.35), blows along FluidLab's ``inject_v`` (−0.3, 0, 1) with FluidLab's
    initial strength and radius (2000 cells/s² and 2 cells, converted to SI with the cell
    size, so the coarse grid behaves like the fine one in grid units), and emits cold air
    (temperature 0) with mix 1. The task drives its pose, direction and strength through
    the action.
    """
    check_choice("quality", quality, QUALITIES)
    n = 128 if quality == "paper" else 32
    h = 1.0 / n
    fan = FanConfig(center=(0.55, 0.5, 0.35), direction=(-0.3, 0.0, 1.0), strength=_STRENGTH_CELLS * h,
                    radius=_RADIUS_CELLS * h, mix=1.0, emit=(0.0,))
    resolution, origin = (n, n, n), None
    if slab:
        first, last = _slab_cells(n, h, 0.0)
        resolution, origin = (n, last - first + 1, n), (0.0, first * h, 0.0)
    cfg = GasConfig(resolution=resolution, cell_size=h, origin=origin, dt=0.03, substeps=1, smoke_channels=1,
                    advection="semi_lagrangian", backtrace="rk3", solver="jacobi", jacobi_iterations=50,
                    jacobi_omega=1.0, warm_start=True, fan_profile="exponential", fans=(fan,), up_axis=1)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def circulation_solid(cfg: GasConfig) -> torch.Tensor:
    """FluidLab's free slab, everything else solid, bool tensor of shape `cfg.resolution`.

    Free are the cells whose centers have y in [61/128, 68/128] m: y-cells 61..67 at
    128 cells, 15..16 at 32 (all cells of a ``slab=True`` grid). Add the room's walls to
    the returned mask with ``|`` before building the simulator.
    """
    first, last = _slab_cells(cfg.resolution[1], cfg.cell_size, cfg.lower[1])
    return slab_mask(cfg.resolution, 1, first, last)


def _slab_cells(n: int, h: float, y0: float) -> tuple[int, int]:
    """First and last y-cell of the free slab on a column of n cells of size h starting at height y0."""
    centers = y0 + (torch.arange(n, dtype=torch.float64) + 0.5) * h
    free = torch.nonzero((centers >= _SLAB[0]) & (centers <= _SLAB[1])).flatten()
    if free.numel() == 0:  # a grid too coarse for the slab keeps the one cell nearest to its middle
        free = torch.argmin((centers - sum(_SLAB) / 2).abs()).reshape(1)
    return int(free[0]), int(free[-1])
