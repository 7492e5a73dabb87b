"""The gas simulator: physim's contract (reset, pure step, rollout, params) over Taichi kernels."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from physim.autodiff import RolloutResult, TaichiOp, checkpointed_rollout
from physim.errors import ConfigError, SimulationDiverged
from physim.gas.config import GasConfig, GasState
from physim.runtime import device as default_device
from physim.runtime import init_taichi

__all__ = ["GasSimulator"]

_PARAMS = ("buoyancy", "smoke_dissipation", "velocity_dissipation")


class _GasOp(TaichiOp):
    """A `TaichiOp` whose program knows when it only restores intermediates for a backward pass.

    Backward re-runs the forward kernels when another call has reused the arrays since.
    The last pressure solve of a step is then skipped: everything after it (gradient
    subtraction, copies) is linear, so no adjoint needs its output, and the solvers'
    adjoints need none of their forward iterates. That saves one solve per step and
    backward pass (half of a forward step with 50 Jacobi sweeps at 32³).
    """

    restoring = False

    def _load_and_run(self, inputs, token=None):
        self.restoring = token is not None
        try:
            return super()._load_and_run(inputs, token)
        finally:
            self.restoring = False


class GasSimulator:
    """Smoke and air on a staggered grid in a closed box, differentiable through Taichi's autodiff.

    Example::

        cfg = GasConfig(resolution=(64, 64), cell_size=1 / 64, dt=0.03, buoyancy=2.0,
                        fans=(FanConfig(center=(0.5, 0.1), direction=(0.0, 1.0), strength=4.0,
                                        radius=0.05, mix=0.5, emit=(1.0,)),))
        sim = GasSimulator(cfg)
        strength = torch.tensor(4.0, requires_grad=True)
        actions = sim.fan_action(strength=strength).expand(40, -1, -1)   # (T, fan_count, action_width)
        out = sim.rollout(sim.reset(), actions, checkpoint_every=10)
        out.state.smoke[..., 0].sum().backward()                         # d(total smoke)/d(fan strength)

    Args:
        cfg: The configuration (defaults to `GasConfig()`).
        solid: Optional solid cells, bool tensor of shape `cfg.resolution`; they block the
            flow (free-slip, no-through) and hold no smoke. The box walls are always solid.
        device: Torch device of states and actions (default: `physim.runtime.device()`).

    Attributes:
        cfg: The validated configuration.
        params: Differentiable physical parameters, tensors of shape (1,): ``"buoyancy"``
            [m/s² per unit smoke], ``"smoke_dissipation"`` and ``"velocity_dissipation"``
            [1/s]. Set ``requires_grad`` on them, or replace them, to learn them.
        solid: The solid mask, bool tensor of shape `cfg.resolution`.
    """

    def __init__(self, cfg: GasConfig | None = None, *, solid: torch.Tensor | None = None,
                 device: torch.device | str | None = None):
        self.cfg = cfg if cfg is not None else GasConfig()
        if not isinstance(self.cfg, GasConfig):
            raise ConfigError("cfg", type(self.cfg).__name__, "a physim.gas.GasConfig")
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = self.cfg.torch_dtype
        res = tuple(self.cfg.resolution)
        if solid is None:
            solid = torch.zeros(res, dtype=torch.bool)
        if not isinstance(solid, torch.Tensor) or tuple(solid.shape) != res:
            got = tuple(solid.shape) if isinstance(solid, torch.Tensor) else type(solid).__name__
            raise ConfigError("solid", got, f"a bool tensor of shape {res}")
        self.solid = solid.to(torch.bool).cpu()
        if bool(self.solid.all()):
            raise ConfigError("solid", "all cells solid", "at least one fluid cell")
        opts = {"dtype": self.dtype, "device": self.device}
        self.params = {name: torch.tensor([float(getattr(self.cfg, name))], **opts) for name in _PARAMS}

        init_taichi()
        from physim.gas.array_kernels import GasArrays

        self._arrays = GasArrays(self.cfg, self.solid.numpy(), self.dtype)
        self._op = self._build_step_op(self._arrays)
        self._projection: tuple | None = None  # built on first `project` call

    # -- construction ---------------------------------------------------------------------------
    def _build_step_op(self, a) -> TaichiOp:
        cfg = self.cfg
        names = ["velocity", "smoke", "pressure", *(["fans"] if cfg.fan_count else []), *_PARAMS]
        op = _GasOp(
            inputs=[a.ports_in[n] for n in names],
            outputs=list(a.ports_out.values()),
            program=lambda run: a.control_step(run, cfg.dt, cfg.cell_size, restoring=op.restoring),
            grad_fields=a.grad_fields(),
            name="GasSimulator.step",
        )
        return op

    def _projection_op(self) -> TaichiOp:
        if self._projection is None:
            from physim.gas.array_kernels import GasArrays

            # Its own arrays: the step's op owns those of the simulator (TaichiOp re-runs its program when
            # another call overwrote them, which it can only see for its own calls).
            pcfg = dataclasses.replace(self.cfg, substeps=1, fans=(), advection="semi_lagrangian", smoke_channels=1)
            a = GasArrays(pcfg, self.solid.numpy(), self.dtype)
            op = _GasOp(inputs=[a.ports_in["velocity"], a.ports_in["pressure"]],
                        outputs=[a.ports_out["velocity"], a.ports_out["pressure"]],
                        program=lambda run: a.projection(run, pcfg.cell_size, restoring=op.restoring),
                        grad_fields=a.grad_fields(), name="GasSimulator.project")
            self._projection = (a, op)
        return self._projection[1]

    # -- the contract ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, *, velocity: torch.Tensor | None = None,
              smoke: torch.Tensor | None = None) -> GasState:
        """Air at rest without smoke, or the given fields.

        Args:
            seed: Accepted for the simulator contract; the initial state is deterministic.
            velocity: Initial face velocities [m/s], shape (*resolution, dim); closed faces
                are zeroed. It is not projected: call `project` for a divergence-free start.
            smoke: Initial smoke, shape (*resolution, smoke_channels); zeroed in solid cells.
        """
        res, dim, c = tuple(self.cfg.resolution), self.cfg.dim, self.cfg.smoke_channels
        opts = {"dtype": self.dtype, "device": self.device}
        v = torch.zeros(*res, dim, **opts) if velocity is None else self._check("velocity", velocity, (*res, dim))
        q = torch.zeros(*res, c, **opts) if smoke is None else self._check("smoke", smoke, (*res, c))
        fluid = (~self.solid).to(**opts)
        return GasState(velocity=v * self.open_faces, smoke=q * fluid[..., None],
                        pressure=torch.zeros(res, **opts), time=torch.zeros((), **opts))

    def step(self, state: GasState, action: torch.Tensor | None = None) -> GasState:
        """Advance one control step (`cfg.substeps` substeps); `state` is not modified.

        Args:
            state: Current state.
            action: Fan settings, shape (fan_count, action_width), constant over the step
                (see `fan_action`); None uses the configured fans.
        """
        return self._step(state, action, *(self.params[n] for n in _PARAMS))

    def rollout(self, state: GasState, actions: torch.Tensor | None = None, *, steps: int | None = None,
                checkpoint_every: int | None = None,
                observe: Callable[[int, GasState], torch.Tensor] | None = None) -> RolloutResult:
        """Differentiable rollout over ``actions.shape[0]`` control steps (or `steps` with the configured fans).

        Args:
            state: Initial state.
            actions: Fan settings per step, shape (T, fan_count, action_width); None runs
                `steps` steps with the configured fans.
            steps: Horizon T when `actions` is None.
            checkpoint_every: Store every K-th state and recompute in backward (memory
                O(T/K + K) states); None keeps the whole graph.
            observe: ``observe(t, state) -> tensor``, stacked into the result (e.g. a slice
                ``lambda t, s: s.smoke[::10, 60:68, ::10]``).
        """
        if actions is not None:
            if not isinstance(actions, torch.Tensor) or actions.dim() != 3:
                got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
                raise ConfigError("actions", got, f"a tensor of shape (T, {self.cfg.fan_count}, "
                                  f"{self.cfg.action_width})")
            actions = self._check_action(actions, leading=(actions.shape[0],))
        return checkpointed_rollout(self._step, state, actions, tuple(self.params[n] for n in _PARAMS),
                                    checkpoint_every=checkpoint_every, observe=observe, steps=steps)

    # -- actions --------------------------------------------------------------------------------
    @property
    def action_columns(self) -> dict[str, slice]:
        """Columns of a fan's action row: ``center``, ``direction``, ``strength``, ``radius``, ``mix``, ``emit``."""
        d, c = self.cfg.dim, self.cfg.smoke_channels
        return {"center": slice(0, d), "direction": slice(d, 2 * d), "strength": slice(2 * d, 2 * d + 1),
                "radius": slice(2 * d + 1, 2 * d + 2), "mix": slice(2 * d + 2, 2 * d + 3),
                "emit": slice(2 * d + 3, 2 * d + 3 + c)}

    def default_action(self) -> torch.Tensor:
        """The configured fans as an action, shape (fan_count, action_width)."""
        rows = [[*f.center, *f.direction, f.strength, f.radius, f.mix, *f.emit] for f in self.cfg.fans]
        if not rows:
            return torch.zeros(0, self.cfg.action_width, dtype=self.dtype, device=self.device)
        return torch.tensor(rows, dtype=self.dtype, device=self.device)

    def fan_action(self, **columns: torch.Tensor | float) -> torch.Tensor:
        """An action with some columns replaced, differentiably; the rest from the configured fans.

        Keywords are the names of `action_columns`; each value broadcasts to
        (fan_count, width of the column), e.g. ``strength=torch.tensor([2.0, 0.5])`` for
        two fans or ``center=pos`` with ``pos`` of shape (fan_count, dim). A gym
        environment exposes the columns it wants as its bounded action space and fills
        the others from the configuration this way.
        """
        base = self.default_action()
        cols = self.action_columns
        unknown = sorted(set(columns) - set(cols))
        if unknown:
            raise ConfigError(unknown[0], columns[unknown[0]], "one of " + ", ".join(cols))
        parts = []
        for name, sl in cols.items():
            part = base[:, sl]
            if name in columns:
                value = torch.as_tensor(columns[name], dtype=self.dtype, device=self.device)
                if value.dim() == 1 and sl.stop - sl.start == 1 and value.shape[0] == base.shape[0]:
                    value = value[:, None]  # one scalar per fan
                try:
                    part = value.expand(base.shape[0], sl.stop - sl.start)
                except RuntimeError:
                    raise ConfigError(name, tuple(value.shape), f"a tensor broadcastable to "
                                      f"({base.shape[0]}, {sl.stop - sl.start})") from None
            parts.append(part)
        return torch.cat(parts, dim=1)

    # -- utilities ------------------------------------------------------------------------------
    def project(self, velocity: torch.Tensor, pressure: torch.Tensor | None = None) -> torch.Tensor:
        """Project face velocities onto divergence-free fields with the configured solver, differentiably.

        Args:
            velocity: Face velocities [m/s], shape (*resolution, dim).
            pressure: Warm start of the potential, shape (*resolution); zeros by default.

        Returns:
            The projected face velocities, shape (*resolution, dim).
        """
        res = tuple(self.cfg.resolution)
        v = self._check("velocity", velocity, (*res, self.cfg.dim))
        p = torch.zeros(res, dtype=self.dtype, device=self.device) if pressure is None else \
            self._check("pressure", pressure, res)
        return self._projection_op()(v, p)[0]

    @property
    def open_faces(self) -> torch.Tensor:
        """1 on faces that join two fluid cells, 0 on walls and solids, shape (*resolution, dim)."""
        if not hasattr(self, "_open_faces"):
            from physim.gas.geometry import open_faces

            self._open_faces = open_faces(self.solid).to(self.device, self.dtype)
        return self._open_faces

    def divergence(self, velocity: torch.Tensor) -> torch.Tensor:
        """Discrete divergence [1/s] of face velocities at cell centers, shape (*resolution); torch, differentiable."""
        from physim.gas.geometry import divergence

        return divergence(velocity * self.open_faces, self.cfg.cell_size) * (~self.solid).to(velocity)

    def cell_velocity(self, state_or_velocity: GasState | torch.Tensor) -> torch.Tensor:
        """Velocities at cell centers [m/s] (mean of the two faces per axis), shape (*resolution, dim)."""
        from physim.gas.geometry import cell_velocity

        v = state_or_velocity.velocity if isinstance(state_or_velocity, GasState) else state_or_velocity
        return cell_velocity(v)

    def cell_centers(self) -> torch.Tensor:
        """Positions of the cell centers [m] (world coordinates, see `GasConfig.origin`), shape (*resolution, dim)."""
        axes = [lo + (torch.arange(n, dtype=self.dtype, device=self.device) + 0.5) * self.cfg.cell_size
                for n, lo in zip(self.cfg.resolution, self.cfg.lower)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)

    @property
    def solver_info(self) -> dict[str, float]:
        """Iterations and relative residual of the last CG solve (empty for Jacobi)."""
        s = self._arrays.solver
        if not hasattr(s, "last_iterations"):
            return {}
        return {"iterations": s.last_iterations, "relative_residual": s.last_residual}

    # -- internals ------------------------------------------------------------------------------
    def _check(self, name: str, t: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(shape):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ConfigError(name, got, f"a tensor of shape {tuple(shape)}")
        if not t.is_floating_point():
            raise ConfigError(name, t.dtype, "a floating-point tensor")
        return t.to(self.device, self.dtype)

    def _check_action(self, action: torch.Tensor, leading: tuple[int, ...] = ()) -> torch.Tensor:
        cfg = self.cfg
        action = self._check("action", action, (*leading, cfg.fan_count, cfg.action_width))
        if cfg.fan_count == 0:
            return action
        a = action.detach()
        if not bool(torch.isfinite(a).all()):
            raise ConfigError("action", "NaN or inf", "finite fan settings")
        cols = self.action_columns
        if not bool((a[..., cols["radius"]] > 0).all()):
            raise ConfigError("action", f"radius {float(a[..., cols['radius']].min()):.3g}", "radius > 0 [m]")
        mix = a[..., cols["mix"]]
        if not bool(((mix >= 0) & (mix <= 1)).all()):
            raise ConfigError("action", f"mix in [{float(mix.min()):.3g}, {float(mix.max()):.3g}]", "mix in [0, 1]")
        return action

    def _step(self, state: GasState, action, buoyancy, smoke_dissipation, velocity_dissipation) -> GasState:
        cfg = self.cfg
        res = tuple(cfg.resolution)
        v = self._check("state.velocity", state.velocity, (*res, cfg.dim))
        q = self._check("state.smoke", state.smoke, (*res, cfg.smoke_channels))
        p = self._check("state.pressure", state.pressure, res)
        if cfg.fan_count:
            fans = self._check_action(self.default_action() if action is None else action)
            if cfg.origin is not None:  # the kernels measure positions from the box's low corner
                shift = torch.zeros(cfg.action_width, dtype=self.dtype, device=self.device)
                shift[: cfg.dim] = torch.tensor(cfg.lower, dtype=self.dtype)
                fans = fans - shift
            fans = (fans,)
        else:
            if action is not None and action.numel():
                raise ConfigError("action", tuple(action.shape), "None or an empty tensor: this grid has no fans")
            fans = ()
        v1, q1, p1 = self._op(v, q, p, *fans, buoyancy, smoke_dissipation, velocity_dissipation)
        if cfg.check_finite:
            for name, t in (("velocity", v1), ("smoke", q1), ("pressure", p1)):
                # One reduction per field: a NaN or inf anywhere makes the sum non-finite.
                if not bool(torch.isfinite(t.detach().sum())):
                    substep = round(float(state.time) / cfg.dt) + cfg.substeps
                    raise SimulationDiverged(substep, f"gas {name}", "contains NaN or inf (check the fans and dt)")
        return GasState(velocity=v1, smoke=q1, pressure=p1, time=state.time + cfg.control_dt)

    def __repr__(self) -> str:
        cfg = self.cfg
        return (f"GasSimulator(resolution={tuple(cfg.resolution)}, solver={cfg.solver!r}, "
                f"fans={cfg.fan_count}, device={self.device})")
