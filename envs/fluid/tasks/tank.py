"""Tank tasks with floating objects: GatheringEasy, GatheringO (paddle currents) and Scooping (a ladle).

The tank is the grid's own walls (FluidLab's tank mesh has the same inner box). FluidLab's
floating ducks are voxelised meshes; physim's are rigid spheres of half the water's density
(FluidLab gives its "rigid" material the water's density, which makes the ducks neutrally
buoyant). GatheringO's tank has a central island (FluidLab's ``tank_O`` mesh, whose exact
shape is not distributed): a static box, leaving an O-shaped channel.
"""

from __future__ import annotations

import numpy as np
from physim.envs.fluid.losses import goal_matching
from physim.envs.fluid.spec import BodySpec, Camera, TaskSpec, ToolSpec
from physim.envs.fluid.tasks.common import horizon_of, liquid, resolution, velocities_from_path

from physim.mpm import Box, BoxCollider, CapsuleCollider, Cylinder, Rigid, Sphere

__all__ = ["gathering_easy", "gathering_o", "scooping"]

WATER = (0.35, 0.65, 0.95)
DUCK_A, DUCK_B = (1.0, 0.85, 0.2), (1.0, 0.5, 0.5)
TANK = ((0.06, 0.3, 0.18), (0.94, 0.65, 0.82))


def _water() -> BodySpec:
    return BodySpec(name="water", material=liquid(1000.0), color=WATER,
                    shape=Box(center=(0.5, 0.375, 0.5), size=(0.88, 0.15, 0.64)))


def _duck(name: str, center, color) -> BodySpec:
    return BodySpec(name=name, material=Rigid(density=500.0), color=color, shape=Sphere(center=center, radius=0.04))


def _paddle(position, dofs, limits, workspace) -> ToolSpec:
    # FluidLab's plate mesh scaled 0.2 and turned to face x: 0.034 × 0.2 × 0.13 m.
    return ToolSpec(name="paddle", position=position, dofs=dofs, limits=limits, workspace=workspace,
                    parts=(BoxCollider(half_size=(0.017, 0.1, 0.065), friction=0.1),))


def _strokes(horizon: int, control_dt: float, axes: int) -> np.ndarray:
    """A paddling rhythm: 40 steps at +1.2 m/s along x, 80 steps back at −0.6 m/s."""
    i = np.arange(horizon) % 120
    vx = np.where(i < 40, 1.2, -0.6)
    out = np.zeros((horizon, axes))
    out[:, 0] = vx
    return out


def _duck_ids(ctx):
    return ctx.ids["duck_a"], ctx.ids["duck_b"]


def gathering_easy(quality, *, horizon: int | None = None) -> TaskSpec:
    """Paddle on one side of the tank to make currents that bring two floating ducks to x = 0.8."""
    H = horizon_of("GatheringEasy", horizon)
    full = horizon_of("GatheringEasy", None)
    res = resolution(quality)

    def loss(ctx, t, x, v, pose):
        a, b = _duck_ids(ctx)
        return 0.5 * ((x.index_select(0, a)[:, 0] - 0.8).abs().mean() + (x.index_select(0, b)[:, 0] - 0.8).abs().mean())

    return TaskSpec(
        name="GatheringEasy",
        description="paddle to make currents that bring two floating ducks to the paddle's side (x = 0.8)",
        domain=TANK, gravity=(0.0, -20.0, 0.0),
        bodies=(_water(), _duck("duck_a", (0.22, 0.47, 0.45), DUCK_A), _duck("duck_b", (0.28, 0.47, 0.57), DUCK_B)),
        tools=(_paddle((0.55, 0.45, 0.5), ("vx", "vz"), (1.5, 1.5), ((0.45, 0.45, 0.25), (0.92, 0.45, 0.75))),),
        horizon=H, step_loss=loss, demo=lambda: _strokes(full, res["control_dt"], 2),
        camera=Camera(elevation=45.0, azimuth=-20.0),
        loss_doc="mean over the two ducks of their particles' mean |x − 0.8| [m]",
        **res,
    )


def gathering_o(quality, *, horizon: int | None = None) -> TaskSpec:
    """Paddle along the near channel of an O-shaped tank to bring two ducks to the far corner (0.88, ·, 0.78)."""
    H = horizon_of("GatheringO", horizon)
    full = horizon_of("GatheringO", None)
    res = resolution(quality)

    def loss(ctx, t, x, v, pose):
        out = 0.0
        for ids in _duck_ids(ctx):
            p = x.index_select(0, ids)
            out = out + 0.5 * ((p[:, 0] - 0.88) ** 2 + (p[:, 2] - 0.78) ** 2).mean()
        return out

    return TaskSpec(
        name="GatheringO",
        description="paddle in the near channel of an O-shaped tank to bring two ducks to the far corner",
        domain=TANK, gravity=(0.0, -20.0, 0.0),
        bodies=(_water(), _duck("duck_a", (0.88, 0.47, 0.45), DUCK_A), _duck("duck_b", (0.25, 0.47, 0.78), DUCK_B)),
        colliders=(BoxCollider(name="island", position=(0.5, 0.45, 0.5), half_size=(0.2, 0.2, 0.08)),),
        tools=(_paddle((0.5, 0.45, 0.25), ("vx",), (1.5,), ((0.12, 0.45, 0.25), (0.88, 0.45, 0.25))),),
        horizon=H, step_loss=loss, demo=lambda: _strokes(full, res["control_dt"], 1),
        camera=Camera(elevation=50.0, azimuth=-20.0),
        loss_doc="mean over the two ducks of their particles' mean (x − 0.88)² + (z − 0.78)² [m²]",
        **res,
    )


# ------------------------------------------------------------------------------------------------ Scooping
def _ladle() -> tuple:
    """A square bowl (inner width 0.156 m, 4.5 cm deep walls) with a handle, origin at the bowl's centre."""
    t, w, h = 0.012, 0.09, 0.045
    return (
        BoxCollider(position=(0.0, -h + t, 0.0), half_size=(w, t, w), friction=0.1),
        BoxCollider(position=(w, 0.0, 0.0), half_size=(t, h, w), friction=0.1),
        BoxCollider(position=(-w, 0.0, 0.0), half_size=(t, h, w), friction=0.1),
        BoxCollider(position=(0.0, 0.0, w), half_size=(w, h, t), friction=0.1),
        BoxCollider(position=(0.0, 0.0, -w), half_size=(w, h, t), friction=0.1),
        CapsuleCollider(position=(w, 0.16, 0.0), radius=0.015, half_height=0.12, friction=0.1),
    )


def _scoop_path(s: np.ndarray) -> np.ndarray:
    """FluidLab's scripted scoop in thirds (deeper: 0.35 m): down, 0.25 m across under the duck, up."""
    p = np.empty((len(s), 3))
    for k, si in enumerate(s):
        a = min(si * 3, 1.0)
        b = min(max(si * 3 - 1, 0.0), 1.0)
        c = min(max(si * 3 - 2, 0.0), 1.0)
        p[k] = (0.75 - 0.25 * b, 0.7 - 0.35 * a + 0.35 * c, 0.55)
    return p


def scooping(quality, *, horizon: int | None = None) -> TaskSpec:
    """Scoop the floating objects out of the water with a ladle, following the goal motion of the objects."""
    H = horizon_of("Scooping", horizon)
    full = horizon_of("Scooping", None)
    res = resolution(quality)
    rigid = Rigid(density=500.0)
    return TaskSpec(
        name="Scooping",
        description="scoop floating objects out of the water with a ladle (goal: the objects under a scripted scoop)",
        domain=((0.12, 0.25, 0.18), (0.88, 0.8, 0.82)), gravity=(0.0, -20.0, 0.0),
        bodies=(
            BodySpec(name="water", material=liquid(1000.0), color=WATER,
                     shape=Box(center=(0.5, 0.35, 0.5), size=(0.76, 0.2, 0.64))),
            BodySpec(name="duck", material=rigid, color=DUCK_A, shape=Sphere(center=(0.5, 0.48, 0.55), radius=0.05)),
            BodySpec(name="ball", material=rigid, color=(0.4, 1.0, 0.4),
                     shape=Sphere(center=(0.3, 0.48, 0.4), radius=0.035)),
            BodySpec(name="stick", material=rigid, color=DUCK_B,
                     shape=Cylinder(center=(0.22, 0.48, 0.6), radius=0.03, height=0.08)),
        ),
        tools=(ToolSpec(name="ladle", position=(0.75, 0.7, 0.55), parts=_ladle(), dofs=("vx", "vy", "vz"),
                        limits=(2.5, 2.5, 2.5), workspace=((0.24, 0.33, 0.3), (0.76, 0.75, 0.7))),),
        horizon=H, step_loss=lambda ctx, t, x, v, pose: goal_matching(ctx, t, x),
        demo=lambda: velocities_from_path(_scoop_path, full, res["control_dt"]),
        goal_bodies=("duck", "ball", "stick"),
        camera=Camera(elevation=30.0, azimuth=-25.0),
        loss_doc="mean over the floating objects' particles of ‖x − x_goal(t)‖² [m²], goal: the scripted scoop",
        **res,
    )


