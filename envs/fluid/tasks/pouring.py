"""Pouring: a glass holds two liquid layers; pour out the upper one (water) and keep the lower one (milk).

FluidLab's glass is a mesh; physim's is a square glass of five box colliders moving as one
rigid tool (inner width 0.38 m, 0.45 m deep, 4 cm walls). FluidLab gives its milk (the lower
layer) half the water's density, which puts the lighter liquid underneath; physim makes the
lower layer the denser one (1200 kg/m³) so that the layers are stable at rest.
"""

from __future__ import annotations

import numpy as np
from physim.envs.fluid.spec import BodySpec, Camera, TaskSpec, ToolSpec
from physim.envs.fluid.tasks.common import horizon_of, liquid, resolution

from physim.mpm import Box, BoxCollider

__all__ = ["pouring"]

INNER, WALL, DEPTH = 0.19, 0.02, 0.45  # inner half width, wall half thickness, inner depth [m]
FLOOR = 0.05  # the domain floor (FluidLab's boundary), where poured water should end up


def _glass() -> tuple:
    """Bottom and four walls; the tool origin is the centre of the liquid block (0.2 m above the inner floor)."""
    bottom = -0.2 - WALL  # inner floor at −0.2
    h = DEPTH / 2 + WALL / 2
    yc = bottom - WALL + h
    o = INNER + WALL
    return (
        BoxCollider(position=(0.0, bottom, 0.0), half_size=(o + WALL, WALL, o + WALL), friction=0.1),
        BoxCollider(position=(o, yc, 0.0), half_size=(WALL, h, o + WALL), friction=0.1),
        BoxCollider(position=(-o, yc, 0.0), half_size=(WALL, h, o + WALL), friction=0.1),
        BoxCollider(position=(0.0, yc, o), half_size=(INNER, h, WALL), friction=0.1),
        BoxCollider(position=(0.0, yc, -o), half_size=(INNER, h, WALL), friction=0.1),
    )


def pouring(quality, *, horizon: int | None = None) -> TaskSpec:
    """Tilt the glass to pour the water layer out while the milk layer stays where it was."""
    H = horizon_of("Pouring", horizon)
    full = horizon_of("Pouring", None)
    res = resolution(quality)
    x0, y0, z0 = 0.6, 0.63, 0.5

    def loss(ctx, t, x, v, pose):
        milk = ctx.ids["milk"]
        water = x.index_select(0, ctx.ids["water"])
        keep = (x.index_select(0, milk) - ctx.x0.index_select(0, milk).to(x.dtype)).abs().sum(-1).mean()
        return keep + 0.2 * (water[:, 1] - FLOOR).abs().mean()

    def demo() -> np.ndarray:
        # FluidLab's starting guess: turn at 0.00115 rad per step (0.575 rad/s) about z, nothing else
        a = np.zeros((full, 3))
        a[:, 2] = 0.575
        return a

    return TaskSpec(
        name="Pouring",
        description="tilt the glass to pour out the upper water layer while the lower milk layer stays",
        domain=((0.05, FLOOR, 0.25), (0.95, 0.95, 0.75)), gravity=(0.0, -20.0, 0.0),
        bodies=(
            BodySpec(name="milk", material=liquid(1200.0), color=(0.95, 0.95, 0.92),
                     shape=Box(center=(x0, y0 - 0.1, z0), size=(2 * INNER, 0.2, 2 * INNER))),
            BodySpec(name="water", material=liquid(1000.0), color=(0.35, 0.65, 0.95),
                     shape=Box(center=(x0, y0 + 0.1, z0), size=(2 * INNER, 0.2, 2 * INNER))),
        ),
        # FluidLab: 6-DoF velocities bounded by 0.02 per step (10 m/s, 10 rad/s), of which its solver
        # optimises the turn about z only; physim offers the planar motion and that turn.
        tools=(ToolSpec(name="glass", position=(x0, y0, z0), parts=_glass(), dofs=("vx", "vy", "wz"),
                        limits=(10.0, 10.0, 10.0), workspace=((0.45, 0.55, z0), (0.65, 0.75, z0)),
                        color=(0.7, 0.9, 0.95)),),
        horizon=H, step_loss=loss, demo=demo,
        camera=Camera(elevation=15.0, azimuth=-15.0),
        loss_doc="mean over milk of ‖x − x₀‖₁ + 0.2 · mean over water of |y − 0.05| [m] (FluidLab's 'default' loss)",
        **res,
    )
