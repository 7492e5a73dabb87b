"""Cup tasks: LatteArt (pour milk), LatteArtStir (draw in milk with a stirrer) and Mixing.

FluidLab's cup is a cylinder of radius 0.42 (its particle boundary); physim's is the grid's
own walls, a square cup of side 0.84 with slip walls, which costs no collider. Coordinates
are FluidLab's (y up, metres).
"""

from __future__ import annotations

import math

import numpy as np
from physim.envs.fluid.losses import goal_matching, mean_pairwise_l1
from physim.envs.fluid.spec import BodySpec, Camera, EmitterSpec, TaskSpec, ToolSpec
from physim.envs.fluid.tasks.common import horizon_of, liquid, resolution, velocities_from_path

from physim.mpm import Box, CapsuleCollider

__all__ = ["latte_art", "latte_art_stir", "mixing"]

COFFEE = (0.58, 0.42, 0.22)
MILK = (0.95, 0.95, 0.92)
CUP_LO, CUP_HI = 0.08, 0.92  # inner walls of the square cup along x and z
VISCOUS = 40.0  # Pa·s, FluidLab's viscous coffee and milk (see common.liquid)


def _stirrer(dofs, limits, workspace, position) -> ToolSpec:
    # FluidLab's stirrer is a rod about 0.4 long and 0.02 thick; physim's is 0.03 thick so that the
    # cpu grid (3.1 cm cells) resolves it.
    return ToolSpec(name="stirrer", position=position, dofs=dofs, limits=limits, workspace=workspace,
                    parts=(CapsuleCollider(radius=0.03, half_height=0.12, friction=8.0),))


# ------------------------------------------------------------------------------------------------ LatteArt
def _latte_art_path(s: np.ndarray) -> np.ndarray:
    """FluidLab's scripted pour: across the cup in x while weaving in z, three cycles, widest mid-way."""
    amp = 0.25 - np.abs(2 * s - 1) * (0.25 - 0.15)
    return np.stack([0.15 + 0.7 * s, 0.5 + amp * np.sin(2 * math.pi * 3 * s)], -1)


def latte_art(quality, *, horizon: int | None = None) -> TaskSpec:
    """Pour milk foam from a moving pitcher into coffee so that it draws the goal pattern."""
    H = horizon_of("LatteArt", horizon)
    full = horizon_of("LatteArt", None)
    res = resolution(quality)

    def demo() -> np.ndarray:
        return velocities_from_path(_latte_art_path, full, res["control_dt"])

    return TaskSpec(
        name="LatteArt",
        description="pour milk from a pitcher moving over a cup of coffee to draw the goal pattern",
        domain=((CUP_LO, 0.5, CUP_LO), (CUP_HI, 0.8, CUP_HI)),
        gravity=(0.0, -20.0, 0.0),
        bodies=(
            BodySpec(name="coffee", material=liquid(1000.0), color=COFFEE,
                     shape=Box(center=(0.5, 0.55, 0.5), size=(0.84, 0.1, 0.84))),
            # FluidLab's milk (foam) has half the coffee's density: it floats.
            BodySpec(name="milk", material=liquid(500.0), color=MILK),
        ),
        tools=(ToolSpec(name="pitcher", position=(0.15, 0.65, 0.5), dofs=("vx", "vz"), limits=(25.0, 25.0),
                        workspace=((0.1, 0.65, 0.1), (0.9, 0.65, 0.9))),),
        # FluidLab: 2 particles of 1e-6 m³ per 0.2 ms substep at 3 m/s downward.
        emitters=(EmitterSpec(body="milk", tool="pitcher", velocity=(0.0, -3.0, 0.0), rate=0.01),),
        horizon=H, step_loss=lambda ctx, t, x, v, pose: goal_matching(ctx, t, x),
        demo=demo, goal_bodies=("milk",),
        camera=Camera(elevation=60.0, azimuth=-20.0),
        loss_doc="mean over milk particles in play of ‖x − x_goal(t)‖² [m²], goal: the scripted pour",
        **res,
    )


# ------------------------------------------------------------------------------------------------ LatteArtStir
def _stir_path(s: np.ndarray) -> np.ndarray:
    """Out from the centre, one and a half turns of radius 0.2, then a cut back through the centre."""
    c = np.array([0.5, 0.5])
    out = np.empty((len(s), 2))
    a = s < 0.2
    out[a] = c + np.stack([0.2 * s[a] / 0.2, 0 * s[a]], -1)
    b = (s >= 0.2) & (s < 0.8)
    th = 3 * math.pi * (s[b] - 0.2) / 0.6
    out[b] = c + 0.2 * np.stack([np.cos(th), np.sin(th)], -1)
    e = s >= 0.8
    out[e] = c + np.stack([-0.2 + 0.4 * (s[e] - 0.8) / 0.2, 0 * s[e]], -1)
    return out


def latte_art_stir(quality, *, horizon: int | None = None) -> TaskSpec:
    """Draw in a thin milk layer on viscous coffee with a stirrer, to match the goal pattern."""
    H = horizon_of("LatteArtStir", horizon)
    full = horizon_of("LatteArtStir", None)
    res = resolution(quality)

    def demo() -> np.ndarray:
        return velocities_from_path(_stir_path, full, res["control_dt"])

    return TaskSpec(
        name="LatteArtStir",
        description="stir a thin milk layer on viscous coffee to draw the goal pattern",
        domain=((CUP_LO, 0.4, CUP_LO), (CUP_HI, 0.72, CUP_HI)),
        gravity=(0.0, -20.0, 0.0),
        bodies=(
            BodySpec(name="coffee", material=liquid(1000.0, VISCOUS), color=COFFEE,
                     shape=Box(center=(0.5, 0.475, 0.5), size=(0.84, 0.15, 0.84))),
            BodySpec(name="milk", material=liquid(1000.0, VISCOUS), color=MILK,
                     shape=Box(center=(0.5, 0.56, 0.5), size=(0.84, 0.02, 0.84))),
        ),
        tools=(_stirrer(("vx", "vz"), (5.0, 5.0), ((0.13, 0.58, 0.13), (0.87, 0.58, 0.87)),
                        (0.5, 0.58, 0.5)),),
        horizon=H, step_loss=lambda ctx, t, x, v, pose: goal_matching(ctx, t, x),
        demo=demo, goal_bodies=("milk",),
        camera=Camera(elevation=60.0, azimuth=-20.0),
        loss_doc="mean over milk particles of ‖x − x_goal(t)‖² [m²], goal: a scripted stir",
        **res,
    )


# ------------------------------------------------------------------------------------------------ Mixing
def _mixing_path(s: np.ndarray) -> np.ndarray:
    """Circles of radius 0.2 about the cup's axis, dipping, four turns."""
    th = 8 * math.pi * s
    return np.stack([0.5 + 0.2 * np.cos(th), 0.6 - 0.05 * np.sin(2 * math.pi * s) ** 2, 0.5 + 0.2 * np.sin(th)], -1)


def mixing(quality, *, horizon: int | None = None) -> TaskSpec:
    """Stir a cube of viscous milk into viscous coffee: spread the milk particles apart."""
    H = horizon_of("Mixing", horizon)
    full = horizon_of("Mixing", None)
    res = resolution(quality)

    def demo() -> np.ndarray:
        start = np.array([0.7, 0.6, 0.5])
        v = velocities_from_path(_mixing_path, full, res["control_dt"])
        # the circle starts at (0.7, 0.6, 0.5): the stirrer's start
        assert np.allclose(_mixing_path(np.zeros(1))[0], start)
        return v

    def loss(ctx, t, x, v, pose):
        return -mean_pairwise_l1(x.index_select(0, ctx.ids["milk"]))

    return TaskSpec(
        name="Mixing",
        description="stir a cube of viscous milk into viscous coffee, spreading the milk",
        domain=((CUP_LO, 0.4, CUP_LO), (CUP_HI, 0.8, CUP_HI)),
        gravity=(0.0, -20.0, 0.0),
        bodies=(
            BodySpec(name="coffee", material=liquid(1000.0, VISCOUS), color=COFFEE,
                     shape=Box(center=(0.5, 0.475, 0.5), size=(0.84, 0.15, 0.84))),
            BodySpec(name="milk", material=liquid(1000.0, VISCOUS), color=MILK,
                     shape=Box(center=(0.5, 0.625, 0.5), size=(0.15, 0.15, 0.15))),
        ),
        tools=(_stirrer(("vx", "vy", "vz"), (3.5, 3.5, 3.5), ((0.13, 0.55, 0.13), (0.87, 0.75, 0.87)),
                        (0.7, 0.6, 0.5)),),
        horizon=H, step_loss=loss, demo=demo,
        camera=Camera(elevation=45.0, azimuth=-25.0),
        loss_doc="−(mean over all pairs of milk particles of ‖x_i − x_j‖₁) [m], exact in O(n log n)",
        **res,
    )
