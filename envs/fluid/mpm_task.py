"""Runtime of an MPM task: builds the simulator from a `TaskSpec` and steps it in torch.

The state of an episode is ``(mpm_state, tool_pose)``: a `physim.mpm.State` (particles and
colliders, simulator coordinates) and the tools' poses (n_tools, 7), task coordinates. One
control step moves the tools (`ToolKinematics`), advances the MPM scene with the tool
colliders' target poses, then releases the particles the emitters owe. Every operation is
torch (the simulator is reached only through its torch interface), so a rollout of
`transition` is differentiable with respect to the actions.

Emitted material waits parked: its particles are packed inside a small sticky static block
in a corner of the domain, where the grid holds them at rest (F = I, no stress builds up),
and an emitter moves them to its nozzle when they are due. The block is part of the scene
(3.5 cells into a corner); parked particles are flagged unused in observations and hidden
in pictures.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from physim.envs.fluid.kinematics import ToolKinematics, quat_rotate
from physim.envs.fluid.spec import EmitterSpec, TaskSpec

from physim.errors import ConfigError
from physim.mpm import Body, BoxCollider, Particles, SceneConfig, Simulator, State
from physim.mpm.shapes import Shape

__all__ = ["BOUND", "LossContext", "MPMTask"]

#: Wall thickness of the grid in cells (physim.mpm's default).
BOUND = 3


def _shift_shape(shape: Shape, off: np.ndarray) -> Shape:
    if isinstance(shape, Particles):
        return dataclasses.replace(shape, positions=np.asarray(shape.positions) - off)
    center = np.asarray(shape.center, dtype=float)
    return dataclasses.replace(shape, center=tuple(float(c) for c in center - off[: len(center)]))


def _shift_collider(col, off3: np.ndarray, **changes):
    pos = np.asarray(tuple(col.position) + (0.0,) * (3 - len(col.position)), dtype=float)
    return dataclasses.replace(col, position=tuple(float(c) for c in pos - off3), **changes)


@dataclass(frozen=True)
class _Emission:
    """One emitter, resolved: its particles and when each is released."""

    spec: EmitterSpec
    ids: torch.Tensor  # particle indices in release order, (n,)
    counts: np.ndarray  # released by the end of control step t, t = 0..horizon, (horizon + 1,)
    offsets: torch.Tensor  # release position in the nozzle frame [m], (n, 3)
    velocities: torch.Tensor  # release velocity in the nozzle frame [m/s], (n, 3)
    tool: int | None


class LossContext:
    """What a task loss may read besides the current particles.

    Attributes:
        ids: Particle indices of each body (name → (n,) long tensor).
        x0: Initial particle positions, task coordinates [m], (N, d).
        goal_ids: Indices of the goal bodies' particles (concatenated in `goal_bodies` order).
        dim: Spatial dimension.
    """

    def __init__(self, task: MPMTask):
        self._task = task
        self.ids = task.body_ids
        self.dim = task.spec.dim
        self.x0 = task.to_task(task.sim.reset().x)
        self.goal_ids = (torch.cat([task.body_ids[b] for b in task.spec.goal_bodies])
                         if task.spec.goal_bodies else None)
        self.goal: torch.Tensor | None = None  # (T, n_goal, d), set by the env once recorded

    def used(self, t: int) -> torch.Tensor:
        """Bool mask (N,): particles present in the scene after control step t (emitted ones count once released)."""
        return self._task.used_mask(t)

    def goal_at(self, t: int) -> torch.Tensor:
        """Goal positions of the goal particles after control step t (1-based), (n_goal, d)."""
        if self.goal is None:
            raise RuntimeError("the goal trajectory has not been recorded")
        return self.goal[t - 1]


class MPMTask:
    """A `TaskSpec` made runnable.

    Args:
        spec: The task.
        dtype: ``torch.float32`` or ``torch.float64``.
        device: Torch device.
    """

    def __init__(self, spec: TaskSpec, *, dtype: torch.dtype, device: torch.device):
        self.spec = spec
        self.dtype, self.device = dtype, torch.device(device)
        d, dx = spec.dim, spec.dx
        lo = np.asarray(spec.domain[0], dtype=float)
        hi = np.asarray(spec.domain[1], dtype=float)
        if lo.shape != (d,) or hi.shape != (d,) or bool((hi <= lo).any()):
            raise ConfigError("domain", spec.domain, f"(low, high) corners of {d} numbers with low < high")
        cells = np.ceil((hi - lo) / dx - 1e-9).astype(int)
        self.offset = lo - BOUND * dx  # task = sim + offset
        self.offset3 = np.concatenate([self.offset, np.zeros(3 - d)])
        self.lo, self.hi = lo, hi
        cfg = SceneConfig(dim=d, grid=tuple(int(c) + 2 * BOUND for c in cells), dx=dx, dt=spec.dt,
                          substeps=spec.substeps, gravity=tuple(spec.gravity), boundary=spec.boundary,
                          bound=BOUND, action="pose", dtype="float32" if dtype == torch.float32 else "float64")
        self.kin = ToolKinematics(spec.tools, spec.control_dt, dtype, self.device)
        emitted = {e.body: e for e in spec.emitters}
        counts = {e.body: self._schedule(e) for e in spec.emitters}

        park = np.asarray(spec.parking if spec.parking is not None else
                          ([lo[0] + dx, hi[1] - dx] + ([lo[2] + dx] if d == 3 else [])), dtype=float)
        bodies, park_blocks = [], []
        for b in spec.bodies:
            if b.emitted:
                n = int(counts[b.name][-1])
                if n < 1:
                    raise ConfigError(f"{b.name}.rate", emitted[b.name].rate,
                                      "a rate that releases at least one particle within the horizon")
                ppc = spec.emitted_particles_per_cell
                vol = dx**d / ppc
                side = math.ceil(n ** (1.0 / d))
                h = 0.2 * dx / side
                grid = np.stack(np.meshgrid(*[np.arange(side)] * d, indexing="ij"), -1).reshape(-1, d)[:n]
                pos = park + (grid - (side - 1) / 2) * h
                shape = Particles(positions=pos - self.offset, volume=vol)
                park_blocks.append(park)
                bodies.append(Body(name=b.name, shape=shape, material=b.material, particles_per_cell=ppc))
            else:
                bodies.append(Body(name=b.name, shape=_shift_shape(b.shape, self.offset), material=b.material,
                                   particles_per_cell=spec.particles_per_cell))
        colliders = []
        init_parts = self.kin.part_poses(self.kin.initial_pose).detach().cpu().numpy().astype(float)
        k = 0
        for t in spec.tools:
            for i, part in enumerate(t.parts):
                p = init_parts[k]
                colliders.append(dataclasses.replace(part, name=f"{t.name}.{i}", kinematic=True,
                                                     position=tuple(p[:3] - self.offset3),
                                                     rotation=tuple(p[3:] / np.linalg.norm(p[3:]))))
                k += 1
        for i, c in enumerate(spec.colliders):
            colliders.append(_shift_collider(c, self.offset3, name=c.name or f"static{i}", kinematic=False))
        if park_blocks:
            half = 2.5 * dx
            colliders.append(BoxCollider(name="parking", position=tuple(np.concatenate([park, [0.0] * (3 - d)])
                                                                        - self.offset3),
                                         half_size=(half,) * d, sticky=True))
        self.sim = Simulator(cfg, bodies, colliders, device=self.device, seed=0)
        mid = self.sim.material_id
        self.body_ids = {b.name: (mid == i).nonzero().squeeze(1) for i, b in enumerate(spec.bodies)}
        self.body_index = torch.as_tensor(mid)
        self.emissions = [self._emission(e, counts[e.body]) for e in spec.emitters]
        self.park = park
        self._used_cache: dict[int, torch.Tensor] = {}
        self._offset3_cache: dict = {}
        self._obs_idx: list[tuple[str, torch.Tensor]] | None = None
        self._ctx: LossContext | None = None
        self._renderer = None

    # -- construction helpers ------------------------------------------------------------------
    def _schedule(self, e: EmitterSpec) -> np.ndarray:
        """Particles released by the end of each control step t = 0..horizon."""
        spec = self.spec
        vol = spec.dx**spec.dim / spec.emitted_particles_per_cell
        stop = spec.horizon if e.stop is None else min(e.stop, spec.horizon)
        t = np.arange(spec.horizon + 1)
        active = np.clip(t, e.start, stop) - e.start
        return np.floor(e.rate * spec.control_dt * active / vol + 1e-9).astype(np.int64)

    def _emission(self, e: EmitterSpec, counts: np.ndarray) -> _Emission:
        spec = self.spec
        ids = self.body_ids[e.body]
        n = int(ids.numel())
        rng = np.random.default_rng(1234 + [b.name for b in spec.bodies].index(e.body))
        u = np.asarray(e.velocity, dtype=float)
        speed = float(np.linalg.norm(u))
        axis = u / speed
        # jet frame: two directions across the jet (a and b) and the jet axis
        helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        a = np.cross(axis, helper)
        a /= np.linalg.norm(a)
        b = np.cross(axis, a)
        if spec.dim == 3:
            width = math.sqrt(e.rate / speed)  # square cross-section of area rate / speed
            across = a * (rng.random((n, 1)) - 0.5) * width + b * (rng.random((n, 1)) - 0.5) * width
        else:
            width = e.rate / speed
            side = a if abs(a[2]) < 0.5 else b  # the in-plane direction across the jet
            side = side * np.array([1.0, 1.0, 0.0])
            side /= np.linalg.norm(side)
            across = side * (rng.random((n, 1)) - 0.5) * width
        along = axis * rng.random((n, 1)) * speed * spec.control_dt
        offsets = np.asarray(e.nozzle, dtype=float) + across + along
        vel = np.broadcast_to(u, (n, 3)).copy()
        if e.jitter > 0:
            vel += e.jitter * speed * (2 * rng.random((n, 3)) - 1)
        if spec.dim == 2:
            vel[:, 2] = 0.0
            offsets[:, 2] = 0.0
        opts = {"dtype": self.dtype, "device": self.device}
        tool = None if e.tool is None else [t.name for t in spec.tools].index(e.tool)
        return _Emission(e, ids, counts, torch.as_tensor(offsets, **opts), torch.as_tensor(vel, **opts), tool)

    # -- coordinates ---------------------------------------------------------------------------
    def to_task(self, x_sim: torch.Tensor) -> torch.Tensor:
        """Simulator → task coordinates (positions)."""
        return x_sim + torch.as_tensor(self.offset, dtype=x_sim.dtype, device=x_sim.device)

    def to_sim(self, x_task: torch.Tensor) -> torch.Tensor:
        return x_task - torch.as_tensor(self.offset, dtype=x_task.dtype, device=x_task.device)

    # -- the functional interface --------------------------------------------------------------
    def initial_state(self) -> tuple[State, torch.Tensor]:
        """The reset state: particles as sampled (emitted ones parked), tools at their start."""
        return self.sim.reset(), self.kin.initial_pose.clone()

    def steps_taken(self, state) -> int:
        """Control steps taken so far in `state`."""
        return round(float(state[0].time.detach()) / self.spec.control_dt)

    def transition(self, state, action: torch.Tensor, *params):
        """One control step: move the tools, advance the scene, release due particles (pure)."""
        mstate, pose = state
        t = self.steps_taken(state) + 1
        new_pose = self.kin.advance(pose, action)
        targets = None
        if self.kin.part_count:
            parts = self.kin.part_poses(new_pose)
            targets = torch.cat([parts[:, :3] - self._offset3_like(parts), parts[:, 3:]], dim=-1)
        mstate = self.sim.step(mstate, targets)
        mstate = self._emit(mstate, new_pose, t)
        return mstate, new_pose

    def _offset3_like(self, t: torch.Tensor) -> torch.Tensor:
        """`offset3` as a tensor of `t`'s dtype and device (made once: this runs every control step)."""
        key = (t.dtype, t.device)
        cached = self._offset3_cache.get(key)
        if cached is None:
            cached = self._offset3_cache[key] = torch.as_tensor(self.offset3, dtype=t.dtype, device=t.device)
        return cached

    def _emit(self, s: State, pose: torch.Tensor, t: int) -> State:
        if t > self.spec.horizon:
            return s
        x, v, C, F = s.x, s.v, s.C, s.F
        d = self.spec.dim
        changed = False
        for em in self.emissions:
            a, b = int(em.counts[t - 1]), int(em.counts[t])
            if b <= a:
                continue
            ids = em.ids[a:b]
            off, vel = em.offsets[a:b].to(x.dtype), em.velocities[a:b].to(x.dtype)
            if em.tool is not None:
                q = pose[em.tool, 3:].to(x.dtype).expand(b - a, 4)
                pos = pose[em.tool, :3].to(x.dtype) + quat_rotate(q, off)
                vel = quat_rotate(q, vel)
            else:
                pos = off
            pos_sim = self.to_sim(pos[:, :d])
            lo = torch.full((d,), (BOUND + 0.5) * self.spec.dx, dtype=x.dtype, device=x.device)
            hi = torch.as_tensor((self.hi - self.lo) + (BOUND - 0.5) * self.spec.dx, dtype=x.dtype, device=x.device)
            pos_sim = torch.minimum(torch.maximum(pos_sim, lo), hi)
            x = x.index_copy(0, ids, pos_sim)
            v = v.index_copy(0, ids, vel[:, :d])
            C = C.index_copy(0, ids, torch.zeros(b - a, d, d, dtype=x.dtype, device=x.device))
            F = F.index_copy(0, ids, torch.eye(d, dtype=x.dtype, device=x.device).expand(b - a, d, d))
            changed = True
        return dataclasses.replace(s, x=x, v=v, C=C, F=F) if changed else s

    def used_mask(self, t: int) -> torch.Tensor:
        """Bool mask (N,) of particles in play after control step t."""
        t = min(max(int(t), 0), self.spec.horizon)
        m = self._used_cache.get(t)
        if m is None:
            m = torch.ones(self.sim.particle_count, dtype=torch.bool, device=self.device)
            for em in self.emissions:
                m[em.ids[int(em.counts[t]):]] = False
            self._used_cache[t] = m
        return m

    # -- loss, observation, picture ------------------------------------------------------------
    @property
    def loss_context(self) -> LossContext:
        if self._ctx is None:
            self._ctx = LossContext(self)
        return self._ctx

    def step_loss(self, t: int, state) -> torch.Tensor:
        """Task loss of control step t (1-based) in `state` (scalar tensor)."""
        mstate, pose = state
        return self.spec.step_loss(self.loss_context, t, self.to_task(mstate.x), mstate.v, pose)

    @property
    def needs_goal(self) -> bool:
        return bool(self.spec.goal_bodies)

    def demo_actions(self, horizon: int | None = None) -> torch.Tensor:
        """The task's scripted actions (clipped to the bounds), (T, A); zeros without a demo."""
        T = self.spec.horizon if horizon is None else horizon
        if self.spec.demo is None:
            return torch.zeros(T, self.spec.action_dim, dtype=self.dtype, device=self.device)
        a = np.asarray(self.spec.demo(), dtype=np.float64)[:T]
        a = np.clip(a, self.spec.action_low, self.spec.action_high)
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def record_goal(self, progress=None) -> torch.Tensor:
        """Positions of the goal bodies' particles under the demo, (T, n_goal, d), task coordinates."""
        ids = self.loss_context.goal_ids
        out = []
        state = self.initial_state()
        with torch.no_grad():
            for a in self.demo_actions():
                state = self.transition(state, a)
                out.append(self.to_task(state[0].x).index_select(0, ids))
                if progress is not None:
                    progress()
        return torch.stack(out)

    def obs_indices(self) -> list[tuple[str, torch.Tensor]]:
        """The observed particles of every observed body: evenly spaced over the body (FluidLab's stride)."""
        out = []
        for b in self.spec.bodies:
            if not b.observe:
                continue
            ids = self.body_ids[b.name]
            n = min(self.spec.obs_particles, int(ids.numel()))
            pick = torch.as_tensor(np.linspace(0, ids.numel() - 1, n).round().astype(np.int64), device=self.device)
            out.append((b.name, ids.index_select(0, pick)))
        return out

    @property
    def obs_dim(self) -> int:
        d = self.spec.dim
        return sum(int(i.numel()) * (2 * d + 1) for _, i in self.obs_indices()) + 7 * len(self.spec.tools)

    def observe(self, state) -> torch.Tensor:
        """Observation vector: per observed body, positions [m], velocities [m/s] and the in-play flag of
        its observed particles; then every tool's position [m] and quaternion (FluidLab's layout)."""
        mstate, pose = state
        t = self.steps_taken(state)
        used = self.used_mask(t)
        x = self.to_task(mstate.x)
        parts = []
        if self._obs_idx is None:
            self._obs_idx = self.obs_indices()
        for _, idx in self._obs_idx:
            parts += [x.index_select(0, idx).flatten(), mstate.v.index_select(0, idx).flatten(),
                      used.index_select(0, idx).to(x.dtype)]
        parts.append(pose.to(x.dtype).flatten())
        return torch.cat(parts)

    def memory_estimate(self) -> tuple[float, float]:
        """(bytes of one stored state, bytes of one control step's autograd graph), estimated.

        A stored state holds x, v, C, F per particle. A step's graph holds, per substep, the
        simulator's taped arrays: about four such sets (sorted copies and transfer outputs with
        their gradients, stress and trial F; 4.0–4.4 measured in the tasks' cpu scenes) and the
        substep's grid, 2d + 1 numbers per node (mass and momentum, grid velocities; the grid's
        gradient buffers are shared by the substeps of a step); and, per control step, the torch
        side (the operation's outputs and input gradients, emitted copies, the loss). Calibrated
        on the peak resident set of LatteArt's full-horizon forward+backward (17 MB a step with
        10,555 particles, about 4 sets per substep plus the grid and 8 sets per step), with
        margin: 6 sets per substep and 6 per step. Used to choose the checkpoint plan.
        """
        d = self.spec.dim
        b = 4 if self.dtype == torch.float32 else 8
        n = self.sim.particle_count
        nodes = int(np.prod(self.sim.cfg.resolution))
        state = n * (2 * d + 2 * d * d) * b
        step = self.spec.substeps * (6 * state + nodes * (2 * d + 1) * b) + 6 * state
        return float(state), float(step)

    def frame(self, state, size: int = 256, caption: str = "") -> np.ndarray:
        """RGB picture (size, size, 3) of `state`."""
        from physim.envs.fluid.render import Renderer, collider_layer, rotate

        spec = self.spec
        r = self._renderer
        if r is None or r.size != size:
            spacing = spec.dx / spec.particles_per_cell ** (1 / spec.dim)
            r = self._renderer = Renderer(spec.camera, spec.domain, spec.dim, size, point_size=max(spacing, 0.006))
        mstate = state[0]
        t = self.steps_taken(state)
        used = self.used_mask(t).cpu().numpy()
        x = self.to_task(mstate.x).detach().cpu().numpy().astype(np.float64)[used]
        colors = np.array([b.color for b in spec.bodies], dtype=np.float32)[self.body_index.cpu().numpy()][used]
        if spec.dim == 2:
            x = np.concatenate([x, np.zeros((len(x), 1))], 1)
        layers = [(x, colors, r.radius)]
        poses = mstate.collider_pose.detach().cpu().numpy().astype(np.float64)
        poses[:, :3] += self.offset3
        cols = self.sim.colliders
        tool_colors = [t.color for t in spec.tools for _ in t.parts]
        ccolors = tool_colors + [(0.55, 0.55, 0.6)] * (len(cols) - len(tool_colors))
        keep = [i for i, c in enumerate(cols) if c.name != "parking"]
        # colliders as sparse surface points (every 4 px): see-through, so a glass shows its contents
        layers += collider_layer([cols[i] for i in keep], poses[keep], 4.0 / r.scale, spec.dim,
                                 [ccolors[i] for i in keep])
        # emitters: the nozzle as a small marker
        for em in self.emissions:
            p = np.asarray(em.spec.nozzle, dtype=float)
            if em.tool is not None:
                tp = state[1][em.tool].detach().cpu().numpy().astype(np.float64)
                p = tp[:3] + rotate(tp[3:], p)
            layers.append((p[None], np.array([[0.9, 0.2, 0.2]], dtype=np.float32), max(2, r.radius + 1)))
        return r.draw(layers, caption)
