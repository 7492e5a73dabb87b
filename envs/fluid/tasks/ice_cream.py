"""Ice-cream tasks: IceCreamStatic (a moving dispenser swirls ice cream onto a fixed cone) and
IceCreamDynamic (a fixed dispenser, the cone moves under it).

FluidLab's ice cream is a plasto-elastic solid (singular values of F clamped, as snow);
physim's is von Mises plasticine (Hencky elasticity, J2 return mapping) with a 1 kPa yield
stress, which holds the swirl's shape under its own weight and flows under the jet. The
cone is a cylinder-shaped collider standing for the cone's opening (FluidLab uses the cone
mesh). Injected streams leave the nozzle at the material's rest density (FluidLab packs
them ~15× denser than rest, and they expand on release).
"""

from __future__ import annotations

import math

import numpy as np
from physim.envs.fluid.losses import goal_matching
from physim.envs.fluid.spec import BodySpec, Camera, EmitterSpec, TaskSpec, ToolSpec
from physim.envs.fluid.tasks.common import horizon_of, resolution

from physim.mpm import CylinderCollider, VonMises

__all__ = ["ice_cream", "ice_cream_dynamic", "ice_cream_static"]

CREAM = (0.98, 0.96, 0.88)
CONE = (0.65, 0.47, 0.30)


def ice_cream() -> VonMises:
    """Soft-serve: 500 kg/m³ (FluidLab's 0.5), wave speed 9 m/s, yield stress 1 kPa."""
    return VonMises(E=3e4, nu=0.3, yield_stress=1e3, density=500.0)


# ------------------------------------------------------------------------------------------------ static
def _static_path(steps: int, control_dt: float) -> np.ndarray:
    """FluidLab's scripted swirl: an upward spiral that tightens from r = 0.12 to 0.01 over 700 steps
    while its angular rate grows from 0.01 to 0.12 rad per step (so the speed along it stays moderate)."""
    i = np.arange(steps + 1)
    f = i / 700.0
    r = 0.12 + (0.01 - 0.12) * f
    rate = 0.01 + (0.12 - 0.01) * f
    theta = np.concatenate([[0.0], np.cumsum(rate[1:])])
    pos = np.stack([0.5 + r * np.cos(theta), 0.36 + 0.26 * f, 0.5 + r * np.sin(theta)], -1)
    return np.diff(pos, axis=0) / control_dt


def ice_cream_static(quality, *, horizon: int | None = None) -> TaskSpec:
    """Swirl ice cream from a moving dispenser onto a fixed cone, matching the goal swirl."""
    H = horizon_of("IceCreamStatic", horizon)
    full = horizon_of("IceCreamStatic", None)
    res = resolution(quality)
    return TaskSpec(
        name="IceCreamStatic",
        description="move the dispenser to swirl ice cream onto a fixed cone like the goal",
        domain=((0.25, 0.05, 0.25), (0.75, 0.7, 0.75)),
        gravity=(0.0, -5.0, 0.0),
        bodies=(BodySpec(name="ice_cream", material=ice_cream(), color=CREAM),),
        colliders=(CylinderCollider(name="cone", position=(0.5, 0.24, 0.5), radius=0.13, half_height=0.1,
                                    friction=8.0),),
        tools=(ToolSpec(name="dispenser", position=(0.62, 0.36, 0.5), dofs=("vx", "vy", "vz"),
                        limits=(2.5, 2.5, 2.5), workspace=((0.3, 0.3, 0.3), (0.7, 0.65, 0.7))),),
        # FluidLab's nozzle is 4.4 cm wide at 1 m/s: 2e-3 m³/s at rest density.
        emitters=(EmitterSpec(body="ice_cream", tool="dispenser", velocity=(0.0, -1.0, 0.0), rate=2e-3),),
        horizon=H, step_loss=lambda ctx, t, x, v, pose: goal_matching(ctx, t, x),
        demo=lambda: _static_path(full, res["control_dt"]), goal_bodies=("ice_cream",),
        parking=(0.28, 0.08, 0.28),
        camera=Camera(elevation=20.0, azimuth=-30.0),
        loss_doc="mean over ice-cream particles in play of ‖x − x_goal(t)‖² [m²], goal: the scripted swirl",
        **res,
    )


# ------------------------------------------------------------------------------------------------ dynamic
def _dynamic_path(steps: int, control_dt: float) -> np.ndarray:
    """Wait 168 steps (as FluidLab's script: the stream needs ~0.27 s to reach the cone), then circle so
    that the stream lands on a spiral tightening from 6 cm to 1 cm off the cone's axis, at 0.3 m/s,
    slowing to rest over the last 20 steps."""
    wait, cool = 168, 20
    theta, r, speed = 0.0, 0.06, 0.3 * control_dt
    pos = [np.array([0.5 + r, 0.3, 0.5])]
    for i in range(steps):
        if i >= wait:
            r = 0.06 - 0.05 * min(1.0, (i - wait) / max(1, steps - cool - wait))
            slow = 1.0 if i < steps - cool else 1 - (i - (steps - cool)) / cool
            theta += slow * speed / r
        pos.append(np.array([0.5 + r * math.cos(theta), 0.3, 0.5 + r * math.sin(theta)]))
    return np.diff(np.array(pos), axis=0) / control_dt


def ice_cream_dynamic(quality, *, horizon: int | None = None) -> TaskSpec:
    """Move the cone under a fixed dispenser so that the ice cream piles up like the goal swirl."""
    H = horizon_of("IceCreamDynamic", horizon)
    full = horizon_of("IceCreamDynamic", None)
    res = resolution(quality)
    return TaskSpec(
        name="IceCreamDynamic",
        description="move the cone under a fixed dispenser to catch a swirl like the goal",
        domain=((0.1, 0.05, 0.1), (0.9, 0.85, 0.9)),
        gravity=(0.0, -10.0, 0.0),
        bodies=(BodySpec(name="ice_cream", material=ice_cream(), color=CREAM),),
        tools=(ToolSpec(name="cone", position=(0.56, 0.3, 0.5), dofs=("vx", "vy", "vz"), limits=(2.5, 2.5, 2.5),
                        workspace=((0.18, 0.15, 0.18), (0.82, 0.6, 0.82)), color=CONE,
                        parts=(CylinderCollider(position=(0.0, -0.05, 0.0), radius=0.1, half_height=0.05,
                                                friction=8.0),)),),
        # FluidLab's ball injector: 7 cm wide at 0.4 m/s until substep 7700 (step 770).
        emitters=(EmitterSpec(body="ice_cream", nozzle=(0.5, 0.8, 0.5), velocity=(0.0, -0.4, 0.0), rate=2e-3,
                              stop=770),),
        horizon=H, step_loss=lambda ctx, t, x, v, pose: goal_matching(ctx, t, x),
        demo=lambda: _dynamic_path(full, res["control_dt"]), goal_bodies=("ice_cream",),
        parking=(0.13, 0.08, 0.13),
        camera=Camera(elevation=20.0, azimuth=-30.0),
        loss_doc="mean over ice-cream particles in play of ‖x − x_goal(t)‖² [m²], goal: a scripted spiral",
        **res,
    )
