"""Declarative description of a fluid-manipulation task: scene, tools, emitters, loss, horizon.

A task module builds one `TaskSpec` per quality preset. Everything is given in the
task's own coordinates (FluidLab's unit-cube frame: y up, metres); the runtime
(`physim.envs.fluid.mpm_task`) crops the MPM grid to `TaskSpec.domain` and shifts
coordinates, so losses and observations are written in task coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError
from physim.mpm.colliders import Collider
from physim.mpm.materials.base import Material
from physim.mpm.shapes import Shape

__all__ = ["DOF_NAMES", "BodySpec", "Camera", "EmitterSpec", "TaskSpec", "ToolSpec"]

#: Degrees of freedom of a rigid tool, in the order of a twist (linear then angular velocity).
DOF_NAMES = ("vx", "vy", "vz", "wx", "wy", "wz")

Vec3 = tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class BodySpec:
    """A body of the scene. ``shape=None`` marks emitted material: its particles wait, parked
    and inert, until an emitter releases them (FluidLab's "nowhere" bodies)."""

    name: str
    """Unique name (e.g. ``"milk"``)."""
    material: Material
    """Constitutive law (physim.mpm)."""
    shape: Shape | None = None
    """Region filled at the start, task coordinates; None: emitted material."""
    color: tuple[float, float, float] = (0.3, 0.6, 1.0)
    """Render colour (RGB in [0, 1])."""
    emitted: bool = False
    """Set by `__post_init__`: True when `shape` is None."""
    observe: bool = True
    """Include this body's subsampled particles in the observation."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name", self.name, "a non-empty body name")
        object.__setattr__(self, "emitted", self.shape is None)


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A rigid tool made of colliders (an end-effector), driven by velocity actions.

    The action controls the twist components named in `dofs` (others stay 0). The tool
    origin is kept inside `workspace` (FluidLab's effector boundary): a commanded motion
    that would leave it is cut at the boundary, differentiably almost everywhere.
    """

    name: str
    """Unique name."""
    position: Vec3
    """Initial position of the tool origin [m], task coordinates."""
    parts: tuple[Collider, ...] = ()
    """Colliders in the tool frame (their `position`/`rotation` relative to the tool origin)."""
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    """Initial orientation, unit quaternion (x, y, z, w)."""
    dofs: tuple[str, ...] = ("vx", "vy", "vz")
    """Controlled twist components, a subset of `DOF_NAMES`, in action order."""
    limits: tuple[float, ...] = (1.0, 1.0, 1.0)
    """Bound of each controlled component: |action| ≤ limit [m/s or rad/s]."""
    workspace: tuple[Vec3, Vec3] = ((-math.inf,) * 3, (math.inf,) * 3)
    """(low, high) corners of the box the tool origin stays in [m]."""
    color: tuple[float, float, float] = (0.85, 0.85, 0.85)
    """Render colour."""

    def __post_init__(self) -> None:
        if not self.dofs:
            raise ConfigError("dofs", self.dofs, "at least one of " + ", ".join(DOF_NAMES))
        for d in self.dofs:
            if d not in DOF_NAMES:
                raise ConfigError("dofs", self.dofs, "names from " + ", ".join(DOF_NAMES))
        if len(set(self.dofs)) != len(self.dofs):
            raise ConfigError("dofs", self.dofs, "distinct names")
        if len(self.limits) != len(self.dofs):
            raise ConfigError("limits", self.limits, f"{len(self.dofs)} bounds, one per dof")
        for lim in self.limits:
            check_positive("limits", lim)
        lo, hi = (np.asarray(w, dtype=float) for w in self.workspace)
        if lo.shape != (3,) or hi.shape != (3,) or bool((lo > hi).any()):
            raise ConfigError("workspace", self.workspace, "(low, high) corners with low ≤ high")
        p = np.asarray(self.position, dtype=float)
        if bool((p < lo).any() or (p > hi).any()):
            raise ConfigError("position", self.position, f"a start inside the workspace {self.workspace}")
        for part in self.parts:
            if not isinstance(part, Collider):
                raise ConfigError("parts", type(part).__name__, "physim.mpm colliders")


@dataclass(frozen=True, kw_only=True)
class EmitterSpec:
    """An injector: releases an emitted body's particles as a jet (FluidLab's Injector).

    Each control step it releases the particles due by then (volumetric `rate` times elapsed
    time, at the body's particle volume) at the nozzle, spread over the jet's cross-section
    and over the distance the jet travels in one step, so the stream has the rest density.
    """

    body: str
    """Name of the emitted body."""
    velocity: Vec3
    """Jet velocity in the nozzle (tool) frame [m/s]."""
    rate: float
    """Volumetric flow rate [m³/s] (planar scenes: m²/s)."""
    tool: str | None = None
    """Tool the nozzle is attached to; None: fixed in the scene."""
    nozzle: Vec3 = (0.0, 0.0, 0.0)
    """Nozzle position in the tool frame (or the scene, without a tool) [m]."""
    start: int = 0
    """First control step that emits."""
    stop: int | None = None
    """Control step at which emission stops (None: the horizon)."""
    jitter: float = 0.0
    """Relative random spread of the jet velocity (FluidLab's ``randomize_inject_v``), fixed per particle."""

    def __post_init__(self) -> None:
        check_positive("rate", self.rate)
        if float(np.linalg.norm(self.velocity)) <= 0:
            raise ConfigError("velocity", self.velocity, "a non-zero jet velocity [m/s]")
        check_int("start", self.start, 0)
        if self.stop is not None:
            check_int("stop", self.stop, self.start + 1)
        check_range("jitter", self.jitter, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class Camera:
    """A fixed orthographic camera for `render()`, fitted to the task's domain: its direction in degrees."""

    elevation: float = 25.0
    """Angle above the horizontal plane [deg] (planar scenes are always seen face on)."""
    azimuth: float = -35.0
    """Turn about the vertical axis [deg], 0 looking along −z."""


LossFn = Callable[..., "object"]


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """Everything that defines one task at one quality."""

    name: str
    """Task name (``"Pouring"``): the gym id is ``physim/<name>-v0``."""
    description: str
    """One line for listings."""
    dim: int
    """3, or 2 for FluidLab's slab tasks (simulated in the plane)."""
    domain: tuple[tuple[float, ...], tuple[float, ...]]
    """(low, high) corners of the region particles live in [m]; the grid's walls lie outside it."""
    dx: float
    """Grid spacing [m]."""
    dt: float
    """MPM substep [s]."""
    substeps: int
    """Substeps per control step."""
    gravity: tuple[float, ...]
    """[m/s²], length dim."""
    bodies: tuple[BodySpec, ...]
    tools: tuple[ToolSpec, ...]
    horizon: int
    """Episode length in control steps (FluidLab's ``horizon_action``)."""
    step_loss: LossFn
    """``step_loss(ctx, t, x, v, tool_pose) -> scalar tensor``: the task loss of control step t
    (1-based) from task-coordinate particle positions and velocities; see `mpm_task.LossContext`."""
    colliders: tuple[Collider, ...] = ()
    """Static colliders, task coordinates."""
    emitters: tuple[EmitterSpec, ...] = ()
    boundary: str = "slip"
    """Domain walls (`physim.mpm.SceneConfig.boundary`)."""
    demo: Callable[[], np.ndarray] | None = None
    """``demo() -> actions (T, action_dim)``: the scripted motion over the task's full horizon (it records
    the goals of shape-matching tasks; a shorter env horizon uses its first steps)."""
    goal_bodies: tuple[str, ...] = ()
    """Bodies whose positions under `demo` are the goal trajectory (shape-matching tasks)."""
    obs_particles: int = 200
    """Particles observed per body."""
    particles_per_cell: int = 4
    """Particles per cell of the bodies present at the start."""
    emitted_particles_per_cell: int = 8
    """Particles per cell (particle volume dx^dim / this) of emitted material."""
    camera: Camera = field(default_factory=Camera)
    parking: tuple[float, ...] | None = None
    """Where emitted particles wait [m] (inside a sticky static block); default: a top corner."""
    control_dt: float = 2e-3
    """Duration of one control step [s]."""
    loss_doc: str = ""
    """The loss in words and formula, for docs and `physim envs`."""

    def __post_init__(self) -> None:
        check_int("dim", self.dim, 2, 3)
        check_int("horizon", self.horizon, 1)
        check_int("substeps", self.substeps, 1)
        if abs(self.dt * self.substeps - self.control_dt) > 1e-9 * self.control_dt:
            raise ConfigError("substeps", self.substeps, f"dt·substeps = control_dt = {self.control_dt} s")
        names = [b.name for b in self.bodies] + [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ConfigError("names", names, "unique body and tool names")
        bodies = {b.name: b for b in self.bodies}
        for e in self.emitters:
            if e.body not in bodies or not bodies[e.body].emitted:
                raise ConfigError("emitters.body", e.body, "the name of a body with shape=None")
            if e.tool is not None and e.tool not in {t.name for t in self.tools}:
                raise ConfigError("emitters.tool", e.tool, "None or a tool name")
        for b in self.bodies:
            if b.emitted and sum(e.body == b.name for e in self.emitters) != 1:
                raise ConfigError("bodies", b.name, "exactly one emitter per emitted body")
        for g in self.goal_bodies:
            if g not in bodies:
                raise ConfigError("goal_bodies", g, "body names")
        if self.goal_bodies and self.demo is None:
            raise ConfigError("demo", None, "a scripted demo that records the goal trajectory")
        if not self.tools:
            raise ConfigError("tools", (), "at least one tool (the agent)")

    @property
    def action_dim(self) -> int:
        return sum(len(t.dofs) for t in self.tools)

    @property
    def action_low(self) -> np.ndarray:
        return -self.action_high

    @property
    def action_high(self) -> np.ndarray:
        return np.array([lim for t in self.tools for lim in t.limits], dtype=np.float32)
