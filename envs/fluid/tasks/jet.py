"""Water-jet tasks in FluidLab's vertical slab: Transporting and Stabilizing.

FluidLab simulates these in a 0.1 m thick slab with the out-of-plane velocity locked, a
planar flow; physim simulates them in 2D (plane strain), which is that flow without the
slab's cost. Volumes become areas: flow rates are m²/s. A "jet bot" (a small box tool)
carries a nozzle; water leaves it as a jet and pushes a heavy rigid square around.
"""

from __future__ import annotations

import math

import numpy as np
from physim.envs.fluid.spec import BodySpec, Camera, EmitterSpec, TaskSpec, ToolSpec
from physim.envs.fluid.tasks.common import horizon_of, liquid, resolution

from physim.mpm import BoxCollider, Particles, Rigid

__all__ = ["stabilizing", "transporting"]

WATER = (0.35, 0.65, 0.95)
BLOCK = (1.0, 0.5, 0.5)


def _square(center, side: float, angle: float, spacing: float) -> np.ndarray:
    """Lattice points filling a square of `side` [m] turned by `angle` [rad] (FluidLab's 45° cube)."""
    n = max(2, round(side / spacing))
    u = (np.arange(n) + 0.5) / n * side - side / 2
    g = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(center) + g @ np.array([[c, s], [-s, c]])


def _block(res, center, density: float) -> BodySpec:
    dx, ppc = res["dx"], res["particles_per_cell"]
    spacing = dx / math.sqrt(ppc)
    pts = _square(center, 0.05, math.pi / 4, spacing)
    return BodySpec(name="block", material=Rigid(density=density), color=BLOCK,
                    shape=Particles(positions=pts, volume=0.05**2 / len(pts)))


def _bot(position, rotation=(0.0, 0.0, 0.0, 1.0)) -> ToolSpec:
    # FluidLab's jetbot (scale 0.15): body about 8 × 4 cm; linear velocity ≤ 0.01 per step (5 m/s),
    # turning ≤ 0.05 rad per step (25 rad/s).
    return ToolSpec(name="jetbot", position=position, rotation=rotation, dofs=("vx", "vy", "wz"),
                    limits=(5.0, 5.0, 25.0), workspace=((0.1, 0.1, 0.0), (0.9, 0.9, 0.0)),
                    parts=(BoxCollider(half_size=(0.04, 0.02), friction=0.5),), color=(0.3, 0.3, 0.3))


def transporting(quality, *, horizon: int | None = None) -> TaskSpec:
    """Steer a jet bot whose water jet pushes a heavy block to x = 0.9 (no gravity, as FluidLab)."""
    H = horizon_of("Transporting", horizon)
    full = horizon_of("Transporting", None)
    res = resolution(quality, dim=2)

    def loss(ctx, t, x, v, pose):
        return (x.index_select(0, ctx.ids["block"])[:, 0] - 0.9).abs().mean()

    def demo() -> np.ndarray:
        # turn the jet around (π in 0.3 s) while driving to the block's left, then hold
        a = np.zeros((full, 3))
        n = 150
        a[:n, 0] = (0.15 - 0.5) / (n * res["control_dt"])
        a[:n, 1] = (0.5 - 0.2) / (n * res["control_dt"])
        a[:n, 2] = math.pi / (n * res["control_dt"])
        return a

    return TaskSpec(
        name="Transporting",
        description="steer a jet bot so that its water jet pushes a heavy block to x = 0.9 (planar, no gravity)",
        domain=((0.05, 0.05), (0.95, 0.95)), gravity=(0.0, 0.0),
        bodies=(BodySpec(name="water", material=liquid(1000.0), color=WATER),
                _block(res, (0.3, 0.5), 10000.0)),
        tools=(_bot((0.5, 0.2, 0.0)),),
        # FluidLab: 3 m/s along the bot's −x from 7 cm ahead of its centre, 3 cm wide.
        emitters=(EmitterSpec(body="water", tool="jetbot", nozzle=(-0.07, 0.0, 0.0), velocity=(-3.0, 0.0, 0.0),
                              rate=0.09),),
        horizon=H, step_loss=loss, demo=demo,
        camera=Camera(),
        loss_doc="mean over the block's particles of |x − 0.9| [m]",
        **res,
    )


def stabilizing(quality, *, horizon: int | None = None) -> TaskSpec:
    """Hold a falling block in place with an upward water jet (FluidLab's Stabilizing, from its first release)."""
    H = horizon_of("Stabilizing", horizon)
    res = resolution(quality, dim=2)
    center = (0.625, 0.5)

    def loss(ctx, t, x, v, pose):
        ids = ctx.ids["block"]
        d = x.index_select(0, ids) - ctx.x0.index_select(0, ids).to(x.dtype)
        return (d * d).sum(-1).mean()

    return TaskSpec(
        name="Stabilizing",
        description="keep a heavy block where it starts with an upward water jet (planar, gravity 10 m/s²)",
        domain=((0.05, 0.15), (0.95, 0.95)), gravity=(0.0, -10.0),
        bodies=(BodySpec(name="water", material=liquid(1000.0), color=WATER),
                _block(res, center, 2000.0)),
        tools=(_bot((0.625, 0.25, 0.0)),),
        # FluidLab: 5 m/s upward from 7 cm above the bot, with random spread (randomize_inject_v);
        # physim's jet is 1 cm wide (FluidLab's 3 cm fills the slab within the 4 s episode).
        emitters=(EmitterSpec(body="water", tool="jetbot", nozzle=(0.0, 0.07, 0.0), velocity=(0.0, 5.0, 0.0),
                              rate=0.05, jitter=0.1),),
        horizon=H, step_loss=loss,
        camera=Camera(),
        loss_doc="mean over the block's particles of ‖x − x₀‖² [m²]",
        **res,
    )
