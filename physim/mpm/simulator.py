"""The MPM simulator: builds the static model once, then steps, rolls out and differentiates.

Everything that enters or leaves is a torch tensor. One control step is `substeps`
substeps of the fused Warp kernels (`transfer_kernels`), wrapped as one
differentiable torch operation (`physim.autodiff.WarpOp`); with a `NeuralMaterial`
each substep is its own operation, with the torch modules called in between on
zero-copy views. Rollouts checkpoint every K steps (`physim.autodiff.checkpointed_rollout`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from physim.autodiff import RolloutResult, checkpointed_rollout
from physim.errors import ConfigError
from physim.mpm.bodies import Body
from physim.mpm.colliders import Collider, MeshCollider
from physim.mpm.config import SceneConfig
from physim.mpm.materials.base import TABLE_WIDTH
from physim.mpm.materials.neural import NeuralMaterial
from physim.mpm.motion import substep_poses
from physim.mpm.shapes import sample_shape
from physim.mpm.state import State
from physim.mpm.threads import resolve_cpu_threads
from physim.runtime import device as default_device

__all__ = ["Simulator"]

log = logging.getLogger(__name__)


class Simulator:
    """Multi-material MLS-MPM scene (Warp kernels, torch interface).

    Args:
        cfg: Grid, time step, walls, precision.
        bodies: Bodies sharing the grid (at least one).
        colliders: Static or kinematic colliders.
        device: Torch device; default `physim.runtime.device()`.
        seed: Seed of random particle sampling.

    Attributes:
        cfg: The configuration.
        bodies, colliders: As given, with default names filled in.
        params: Differentiable parameters, scalar tensors named ``"<body>.<param>"`` (E, nu,
            density, yield_stress, friction_angle, ...) and ``"<collider>.friction"``.
        material_id: Body index of each particle, shape (N,), int64.
        particle_volume: Initial volume of each particle [m^d], shape (N,).

    Example::

        cfg = SceneConfig(dim=3, grid=32, dt=2e-4, substeps=10)
        sim = Simulator(cfg, [Body(shape=Box(center=(0.5, 0.4, 0.5), size=(0.2,) * 3),
                                   material=Elastic(E=1e5, nu=0.2))])
        s0 = sim.reset()
        out = sim.rollout(s0, steps=50, checkpoint_every=10, observe=lambda t, s: s.x.mean(0))
    """

    def __init__(self, cfg: SceneConfig, bodies: Sequence[Body], colliders: Sequence[Collider] = (), *,
                 device: torch.device | str | None = None, seed: int = 0):
        if not isinstance(cfg, SceneConfig):
            raise ConfigError("cfg", type(cfg).__name__, "a physim.mpm.SceneConfig")
        bodies, colliders = list(bodies), list(colliders)
        if not bodies:
            raise ConfigError("bodies", bodies, "at least one Body")
        for i, b in enumerate(bodies):
            if not isinstance(b, Body):
                raise ConfigError(f"bodies[{i}]", type(b).__name__, "a physim.mpm.Body")
        for i, c in enumerate(colliders):
            if not isinstance(c, Collider):
                raise ConfigError(f"colliders[{i}]", type(c).__name__, "a physim.mpm collider")
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = cfg.torch_dtype
        self.bodies = [b if b.name else _renamed(b, f"body{i}") for i, b in enumerate(bodies)]
        self.colliders = [c if c.name else _renamed(c, f"collider{i}") for i, c in enumerate(colliders)]
        names = [b.name for b in self.bodies] + [c.name for c in self.colliders]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError("name", dup[0], "names unique across bodies and colliders")
        if any(isinstance(c, MeshCollider) for c in self.colliders) and cfg.dim != 3:
            raise ConfigError("colliders", "MeshCollider", "a 3D scene (mesh colliders are 3D only)")
        self._check_cfl()
        # the setting or PHYSIM_CPU_THREADS, checked here, before any kernel runs
        self.cpu_threads = resolve_cpu_threads(cfg.cpu_threads)
        self._sample(seed)
        self._build_params()
        self._kinematic = [i for i, c in enumerate(self.colliders) if c.kinematic]
        self._neural = [i for i, b in enumerate(self.bodies) if isinstance(b.material, NeuralMaterial)]
        self._backend = None  # Warp model, built on first step

    # ------------------------------------------------------------------ construction helpers
    def _check_cfl(self) -> None:
        cfg = self.cfg
        dx, dt = cfg.spacing, cfg.dt
        for b in self.bodies:
            c = b.material.wave_speed()
            if c > 0 and dt > cfg.cfl * dx / c:
                raise ConfigError(
                    "dt", dt,
                    f"dt ≤ {cfg.cfl * dx / c:.4g} s: the CFL bound cfl·dx/c for body '{b.name}' "
                    f"(wave speed c = {c:.4g} m/s, dx = {dx:.4g} m, cfl = {cfg.cfl})")
            nu = b.material.kinematic_viscosity()
            if nu > 0 and dt > cfg.cfl * dx * dx / (cfg.dim * nu):
                raise ConfigError(
                    "dt", dt,
                    f"dt ≤ {cfg.cfl * dx * dx / (cfg.dim * nu):.4g} s: the viscous bound cfl·dx²/(d·ν) for body "
                    f"'{b.name}' (kinematic viscosity ν = {nu:.4g} m²/s)")
            if b.velocity is not None:
                if len(b.velocity) != cfg.dim:
                    raise ConfigError(f"{b.name}.velocity", b.velocity, f"{cfg.dim} numbers [m/s]")
                speed = math.sqrt(sum(float(c) ** 2 for c in b.velocity))
                if speed * dt > cfg.cfl * dx:
                    raise ConfigError("dt", dt, f"dt ≤ {cfg.cfl * dx / speed:.4g} s: body '{b.name}' moves "
                                      f"{speed:.4g} m/s, more than cfl·dx per substep")

    def _sample(self, seed: int) -> None:
        cfg = self.cfg
        rng = np.random.default_rng(seed)
        dx, dim = cfg.spacing, cfg.dim
        xs, vols, ids, vels = [], [], [], []
        lo = cfg.bound * dx
        for i, b in enumerate(self.bodies):
            ppc = b.particles_per_cell or 2**dim
            c = getattr(b.shape, "center", None)
            if c is not None and len(c) != dim:
                raise ConfigError(f"{b.name}.shape.center", c, f"{dim} numbers [m]")
            p, vol = sample_shape(b.shape, dim, dx, ppc, b.sampling, rng)
            if len(p) == 0:
                raise ConfigError(f"{b.name}.shape", b.shape, "a shape holding at least one particle at this dx")
            hi = np.array([(n - cfg.bound) * dx for n in cfg.resolution])
            bad = (p < lo).any(1) | (p > hi).any(1)
            if bad.any():
                q = p[bad][0]
                raise ConfigError(
                    f"{b.name}.shape", b.shape,
                    f"particles inside the domain interior [{lo:.4g}, {hi.tolist()}] m (walls of {cfg.bound} "
                    f"nodes); particle at {np.round(q, 5).tolist()} is outside")
            xs.append(p)
            vols.append(np.full(len(p), vol))
            ids.append(np.full(len(p), i))
            vel = np.zeros(dim) if b.velocity is None else np.asarray(b.velocity, dtype=np.float64)
            vels.append(np.broadcast_to(vel, p.shape))
        opts = {"device": self.device, "dtype": self.dtype}
        self._x0 = torch.as_tensor(np.concatenate(xs), **opts)
        self._v0 = torch.as_tensor(np.concatenate(vels), **opts)
        self.particle_volume = torch.as_tensor(np.concatenate(vols), **opts)
        self.material_id = torch.as_tensor(np.concatenate(ids), device=self.device, dtype=torch.int64)
        self.particle_count = int(self._x0.shape[0])

    def _build_params(self) -> None:
        opts = {"device": self.device, "dtype": self.dtype}
        self.params: dict[str, torch.Tensor] = {}
        for b in self.bodies:
            for k, v in b.material.initial_params().items():
                self.params[f"{b.name}.{k}"] = torch.tensor(v, **opts)
        for c in self.colliders:
            self.params[f"{c.name}.friction"] = torch.tensor(float(c.friction), **opts)

    # ------------------------------------------------------------------ public API
    @property
    def body_names(self) -> list[str]:
        return [b.name for b in self.bodies]

    @property
    def collider_names(self) -> list[str]:
        return [c.name for c in self.colliders]

    @property
    def kinematic_count(self) -> int:
        """Number of kinematic colliders (rows of an action)."""
        return len(self._kinematic)

    @property
    def action_shape(self) -> tuple[int, int] | None:
        """Shape of one step's action, or None when no collider is kinematic."""
        if not self._kinematic:
            return None
        return (len(self._kinematic), 6 if self.cfg.action == "velocity" else 7)

    def particle_mass(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mass of each particle [kg], shape (N,): density × initial volume (differentiable)."""
        params = self.params if params is None else params
        rho = torch.stack([params[f"{b.name}.density"] if f"{b.name}.density" in params else
                           torch.tensor(b.material.density, device=self.device, dtype=self.dtype)
                           for b in self.bodies])
        return rho[self.material_id] * self.particle_volume

    def reset(self, seed: int | None = None, *, x: torch.Tensor | None = None,
              v: torch.Tensor | None = None) -> State:
        """Initial state: sampled particles at rest (or with the bodies' velocities), F = I.

        Args:
            seed: Unused (sampling is seeded at construction); accepted for the contract.
            x: Optional initial positions [m], shape (N, d) (e.g. requiring grad).
            v: Optional initial velocities [m/s], shape (N, d).
        """
        n, d = self.particle_count, self.cfg.dim
        opts = {"device": self.device, "dtype": self.dtype}
        x0 = self._x0.clone() if x is None else self._check_particles("x", x)
        if x is not None:
            lo = self.cfg.bound * self.cfg.spacing
            hi = torch.tensor([(n - self.cfg.bound) * self.cfg.spacing for n in self.cfg.resolution],
                              device=self.device, dtype=self.dtype)
            bad = ~torch.isfinite(x0).all(1) | (x0 < lo).any(1) | (x0 > hi).any(1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise ConfigError("x", x0[i].tolist(), f"particle positions inside the domain interior [{lo:.4g}, "
                                  f"{hi.tolist()}] m (particle {i} is not)")
        v0 = self._v0.clone() if v is None else self._check_particles("v", v)
        k = len(self.colliders)
        pose = torch.tensor([c.pose for c in self.colliders], **opts).reshape(k, 7)
        return State(
            x=x0, v=v0, C=torch.zeros(n, d, d, **opts),
            F=torch.eye(d, **opts).expand(n, d, d).clone(),
            collider_pose=pose, collider_force=torch.zeros(k, 3, **opts),
            collider_torque=torch.zeros(k, 3, **opts),
            time=torch.zeros((), device=self.device, dtype=torch.float64),
        )

    def step(self, state: State, action: torch.Tensor | None = None) -> State:
        """Advance one control step (`cfg.substeps` substeps); `state` is not modified.

        Args:
            state: Current state.
            action: Kinematic collider commands, shape `action_shape`; None: at rest.

        Raises:
            SimulationDiverged: a value became NaN/inf or a particle left the domain.
        """
        return self._step(state, action, *self._flat_params())

    def rollout(self, state: State, actions: torch.Tensor | None = None, *, steps: int | None = None,
                checkpoint_every: int | None = None,
                observe: Callable[[int, State], torch.Tensor] | None = None) -> RolloutResult:
        """Differentiable rollout over T control steps with bounded memory.

        Gradients reach `state`'s tensors, `actions`, every tensor in `params` that requires
        grad and the parameters of NeuralMaterial modules.

        Args:
            state: Initial state.
            actions: Collider commands, shape (T, *action_shape); None for a passive scene.
            steps: T when `actions` is None.
            checkpoint_every: Store every K-th state and recompute in backward (memory
                O(T/K + K·substeps)); None keeps every step's graph.
            observe: ``observe(t, state) -> tensor``, stacked in the result (keep what the loss needs).
        """
        if actions is not None:
            shape = self.action_shape
            if shape is None:
                raise ConfigError("actions", tuple(actions.shape), "None: the scene has no kinematic collider")
            if not isinstance(actions, torch.Tensor) or actions.dim() != 3 or tuple(actions.shape[1:]) != shape:
                got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
                raise ConfigError("actions", got, f"a tensor of shape (T, {shape[0]}, {shape[1]})")
        return checkpointed_rollout(self._step, state, actions, self._flat_params(),
                                    checkpoint_every=checkpoint_every, observe=observe, steps=steps)

    def grid_fields(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Particle-to-grid transfer of `state` (differentiable): node mass and momentum.

        Returns:
            (mass [kg] shape `cfg.resolution`, momentum [kg·m/s] shape (*resolution, d)). The
            momentum includes the stress impulse of one substep, as in the substep itself.
        """
        be = self._ensure_backend()
        table = self._table(dict(zip(self._param_keys(), self._flat_params())))
        tau = be.no_stress
        if self._neural:
            tau = self._neural_stress(state.F, self._neural_calls(self._flat_params()[len(self.params):]))
        g = be.grid_op(state.x, state.v, state.C, state.F, table, tau)
        res, d = self.cfg.resolution, self.cfg.dim
        return g[:, d].reshape(res), g[:, :d].reshape(*res, d)

    def _ensure_backend(self):
        if self._backend is None:
            from physim.mpm.backend import WarpBackend

            self._backend = WarpBackend(self)
        return self._backend

    # ------------------------------------------------------------------ step internals
    def _param_keys(self) -> list[str]:
        return list(self.params)

    def _modules(self) -> list[torch.nn.Module]:
        return [m for i in self._neural for m in self.bodies[i].material.modules()]

    def _flat_params(self) -> list[torch.Tensor]:
        out = [self.params[k] for k in self._param_keys()]
        for m in self._modules():
            out += list(m.parameters())
        return out

    def _check_particles(self, name: str, t: torch.Tensor) -> torch.Tensor:
        expected = (self.particle_count, self.cfg.dim)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != expected:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ConfigError(name, got, f"a tensor of shape {expected}")
        return t.to(self.device, self.dtype)

    def _table(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = []
        for b in self.bodies:
            p = {k: named[f"{b.name}.{k}"] for k in b.material.param_names}
            cols = b.material.table_row(p, self.cfg.dim)
            zero = torch.zeros((), device=self.device, dtype=self.dtype)
            rows.append(torch.stack([cols.get(j, zero).to(self.dtype).reshape(()) for j in range(TABLE_WIDTH)]))
        return torch.stack(rows)

    def _collider_records(self, state: State, action, named):
        cfg = self.cfg
        k = len(self.colliders)
        opts = {"device": self.device, "dtype": self.dtype}
        pose = state.collider_pose
        if k == 0:
            return torch.zeros(cfg.substeps, 1, 13, **opts), pose, torch.zeros(1, **opts)
        lin = torch.zeros(k, 3, **opts)
        ang = torch.zeros(k, 3, **opts)
        target_q = None
        if self._kinematic:
            if action is None:
                action = torch.zeros(self.action_shape, **opts)
            elif tuple(action.shape) != self.action_shape:
                raise ConfigError("action", tuple(action.shape), f"a tensor of shape {self.action_shape}")
            action = action.to(**opts)
            idx = torch.tensor(self._kinematic, device=self.device)
            if cfg.action == "velocity":
                lin = lin.index_copy(0, idx, action[:, :3])
                ang = ang.index_copy(0, idx, action[:, 3:6])
            else:
                T = cfg.control_dt
                p0, q0 = pose[idx, :3], pose[idx, 3:]
                qt = action[:, 3:7] / action[:, 3:7].norm(dim=-1, keepdim=True)
                qt = torch.where((qt * q0).sum(-1, keepdim=True) < 0, -qt, qt)
                lin = lin.index_copy(0, idx, (action[:, :3] - p0) / T)
                # ω ≈ 2 vec(q_t q0⁻¹) / T (small rotations per step)
                from physim.mpm.motion import quat_mul

                q0c = torch.cat([-q0[:, :3], q0[:, 3:]], dim=-1)
                dq = quat_mul(qt, q0c)
                ang = ang.index_copy(0, idx, 2.0 * dq[:, :3] / T)
                target_q = pose[:, 3:].index_copy(0, idx, qt)
        records, pose_end = substep_poses(pose, lin, ang, cfg.dt, cfg.substeps, target_q)
        friction = torch.stack([named[f"{c.name}.friction"] for c in self.colliders]).to(self.dtype)
        return records, pose_end, friction

    def _step(self, state: State, action, *flat) -> State:
        cfg = self.cfg
        keys = self._param_keys()
        named = dict(zip(keys, flat[: len(keys)]))
        module_params = flat[len(keys):]
        be = self._ensure_backend()
        table = self._table(named)
        records, pose_end, friction = self._collider_records(state, action, named)
        x, v, C, F = state.x, state.v, state.C, state.F
        substep0 = round(float(state.time.detach()) / cfg.dt)
        if not self._neural:
            x, v, C, F, fsum, tsum = be.op(x, v, C, F, table, records, friction, be.no_stress)
            be.check(substep0)
        else:
            fsum = tsum = 0
            calls = self._neural_calls(module_params)
            for s in range(cfg.substeps):
                tau = self._neural_stress(F, calls)
                x, v, C, F, f, t = be.op(x, v, C, F, table, records[s : s + 1], friction, tau)
                be.check(substep0 + s)
                F = self._neural_project(F, calls)
                fsum, tsum = fsum + f, tsum + t
        k = len(self.colliders)
        return State(x=x, v=v, C=C, F=F, collider_pose=pose_end,
                     collider_force=(fsum[:k] / cfg.substeps), collider_torque=(tsum[:k] / cfg.substeps),
                     time=state.time + cfg.control_dt)

    # ------------------------------------------------------------------ neural materials
    def _neural_calls(self, module_params):
        """(particle index, stress fn, plastic fn) per neural body, with explicit parameters."""
        from torch.func import functional_call

        calls, i = [], 0
        for b in self._neural:
            mat = self.bodies[b].material
            idx = (self.material_id == b).nonzero().squeeze(1)
            fns = []
            for m in (mat.stress, mat.plastic):
                if m is None:
                    fns.append(None)
                    continue
                names = [n for n, _ in m.named_parameters()]
                p = dict(zip(names, module_params[i : i + len(names)]))
                i += len(names)
                fns.append(lambda F, m=m, p=p: functional_call(m, p, (F,)))
            calls.append((idx, fns[0], fns[1]))
        return calls

    def _neural_stress(self, F, calls):
        d = self.cfg.dim
        tau = torch.zeros(self.particle_count, d, d, device=self.device, dtype=self.dtype)
        for idx, stress, _ in calls:
            if stress is not None:
                Fi = F[idx]
                P = stress(Fi)
                if tuple(P.shape) != tuple(Fi.shape):
                    raise ConfigError("NeuralMaterial.stress", tuple(P.shape), f"an output of shape {tuple(Fi.shape)}")
                tau = tau.index_copy(0, idx, (P @ Fi.transpose(-1, -2)).to(self.dtype))
        return tau

    def _neural_project(self, F, calls):
        for idx, _, plastic in calls:
            if plastic is not None:
                Fi = F[idx]
                Fn = plastic(Fi)
                if tuple(Fn.shape) != tuple(Fi.shape):
                    raise ConfigError("NeuralMaterial.plastic", tuple(Fn.shape),
                                      f"an output of shape {tuple(Fi.shape)}")
                F = F.index_copy(0, idx, Fn.to(self.dtype))
        return F

    def __repr__(self) -> str:
        return (f"Simulator(dim={self.cfg.dim}, grid={self.cfg.resolution}, particles={self.particle_count}, "
                f"bodies={self.body_names}, colliders={self.collider_names}, device={self.device})")


def _renamed(obj, name):
    import dataclasses

    return dataclasses.replace(obj, name=name)

