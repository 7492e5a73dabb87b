"""`FluidEnv`: a FluidLab task as a gymnasium environment with a differentiable functional face.

Gym face (gymnasium 1.x): ``reset(seed=, options=)``, the 5-tuple ``step``, numpy float32
observations and actions (so `check_env`, vector envs and RL libraries need no wrapper),
``render_mode="rgb_array"``. Functional face for trajectory optimisation, on
``env.unwrapped``: `rollout_loss(actions)` (differentiable, checkpointed), plus
`initial`, `transition`, `step_loss`, `observation` for custom loops, and `tool_path` /
`tool_axis_names` for the sim-to-real export of ``physim trajopt``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from physim.envs.fluid.quality import get_quality
from physim.envs.fluid.registry import HORIZONS, TASKS, build_spec
from physim.envs.fluid.spec import TaskSpec

from physim.autodiff import checkpointed_rollout
from physim.errors import ConfigError, SimulationDiverged

__all__ = ["FluidEnv"]

log = logging.getLogger(__name__)

# Task frame of the export: x as the scene's x, y = −z, z = y (up), origin at the tool's start.
_TRANSLATION_AXIS = {"vx": ("tool_x", 0, 1.0), "vy": ("tool_z", 1, 1.0), "vz": ("tool_y", 2, -1.0)}
_ROTATION_AXIS = {"wx": ("tool_roll", 1.0), "wy": ("tool_yaw", 1.0), "wz": ("tool_pitch", -1.0)}


class FluidEnv(gym.Env):
    """One fluid-manipulation task (see docs/envs.md for the table of tasks).

    Args:
        task: Task name, e.g. ``"Pouring"`` (``gym.make("physim/Pouring-v0")`` passes it).
        quality: ``"cpu"`` (default: small grids, a full episode in well under a minute on a
            laptop core) or ``"paper"`` (FluidLab's resolution, for GPUs).
        render_mode: None or ``"rgb_array"``.
        horizon: Episode length in control steps; default the task's (FluidLab's). Shorter
            horizons make quick tests and curricula.
        dtype: ``"float32"`` (default) or ``"float64"`` (gradient checks).
        device: Torch device; default ``physim.runtime.device()``.
        checkpoint_every: Checkpointing of `rollout_loss`: ``"auto"`` (store the whole graph when
            it fits `memory_budget`, else every K-th step with K balancing stored states and one
            segment's graph), None (store all), or an int K.
        memory_budget: Bytes `"auto"` may spend on the stored graph (default 1 GiB).
        render_size: Image width and height [px].
        diverged_reward: Reward of a step whose simulation diverged (the episode then
            terminates; FluidLab uses −1000 for a NaN reward).
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, task: str, quality: str = "cpu", render_mode: str | None = None, *,
                 horizon: int | None = None, dtype: str = "float32", device: str | torch.device | None = None,
                 checkpoint_every: int | str | None = "auto", memory_budget: float = 2.0**30,
                 render_size: int = 256, diverged_reward: float = -1000.0):
        if not isinstance(task, str) or task not in TASKS:
            raise ConfigError("task", task, "one of " + ", ".join(TASKS))
        q = get_quality(quality)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError("render_mode", render_mode, "None or 'rgb_array'")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int)
                                    or not 1 <= horizon <= HORIZONS[task]):
            raise ConfigError("horizon", horizon, f"None or an integer in [1, {HORIZONS[task]}]")
        if dtype not in ("float32", "float64"):
            raise ConfigError("dtype", dtype, "'float32' or 'float64'")
        if not (checkpoint_every is None or checkpoint_every == "auto" or
                (isinstance(checkpoint_every, int) and not isinstance(checkpoint_every, bool)
                 and checkpoint_every >= 1)):
            raise ConfigError("checkpoint_every", checkpoint_every, "'auto', None or an integer >= 1")
        if isinstance(render_size, bool) or not isinstance(render_size, int) or not 32 <= render_size <= 4096:
            raise ConfigError("render_size", render_size, "an integer in [32, 4096]")
        if not math.isfinite(float(diverged_reward)):
            raise ConfigError("diverged_reward", diverged_reward, "a finite number")
        from physim.runtime import device as default_device

        self.task_name = task
        self.quality = q.name
        self.render_mode = render_mode
        self.render_size = render_size
        self.diverged_reward = float(diverged_reward)
        self.checkpoint_every = checkpoint_every
        self.memory_budget = float(memory_budget)
        self._dtype = torch.float32 if dtype == "float32" else torch.float64
        self._device = torch.device(device) if device is not None else default_device()
        spec = build_spec(task, q, horizon=horizon)
        self.spec_task = spec
        if isinstance(spec, TaskSpec):
            from physim.envs.fluid.mpm_task import MPMTask

            self._task = MPMTask(spec, dtype=self._dtype, device=self._device)
        else:
            self._task = spec.build(dtype=self._dtype, device=self._device)
        self.horizon = spec.horizon
        self.control_dt = spec.control_dt
        self.metadata = {**self.metadata, "render_fps": round(1.0 / spec.control_dt)}
        low, high = spec.action_low, spec.action_high
        self.action_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self._task.obs_dim,), dtype=np.float32)
        self._low64 = torch.as_tensor(low, dtype=torch.float64)
        self._high64 = torch.as_tensor(high, dtype=torch.float64)
        self._state = None
        self._t = 0
        self._done = True
        self._last_loss = math.nan

    # ------------------------------------------------------------------ gym face
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. The scenes are deterministic (as FluidLab's): the seed seeds
        `np_random` only, so equal seeds give equal episodes for equal actions."""
        super().reset(seed=seed)
        if options not in (None, {}):
            raise ConfigError("options", options, "None: fluid tasks take no reset options")
        self._ensure_goal()
        self._state = self._task.initial_state()
        self._t = 0
        self._done = False
        self._last_loss = math.nan
        return self._obs(), {"step": 0}

    def step(self, action):
        if self._state is None:
            raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        if self._done:
            raise gym.error.ResetNeeded(
                "Cannot call env.step() after the episode ended (terminated or truncated): call env.reset()")
        a = self._check_action(action)
        info: dict[str, Any] = {}
        with torch.no_grad():
            try:
                new = self._task.transition(self._state, a)
                loss = float(self._task.step_loss(self._t + 1, new))
                if not math.isfinite(loss):
                    raise SimulationDiverged(self._t + 1, "loss", f"is {loss}")
            except SimulationDiverged as exc:
                log.warning("%s: %s; the episode terminates with reward %g", self.task_name, exc,
                            self.diverged_reward)
                self._done = True
                info.update(step=self._t, diverged=str(exc))
                return self._obs(), self.diverged_reward, True, False, info
        self._state = new
        self._t += 1
        self._last_loss = loss
        truncated = self._t >= self.horizon
        self._done = truncated
        info.update(step=self._t, loss=loss)
        return self._obs(), -loss, False, truncated, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; make the env with render_mode='rgb_array'")
            return None
        if self._state is None:
            self._state = self._task.initial_state()
        caption = f"{self.task_name}  step {self._t}/{self.horizon}"
        if math.isfinite(self._last_loss):
            caption += f"  loss {self._last_loss:.4g}"
        return self._task.frame(self._state, self.render_size, caption)

    def _obs(self) -> np.ndarray:
        with torch.no_grad():
            return self._task.observe(self._state).detach().cpu().numpy().astype(np.float32)

    def _check_action(self, action) -> torch.Tensor:
        """The action as a tensor, after checking shape, finiteness and bounds (before any simulation)."""
        try:
            a = torch.as_tensor(np.asarray(action.detach().cpu() if isinstance(action, torch.Tensor) else action,
                                            dtype=np.float64))
        except (TypeError, ValueError):
            raise ConfigError("action", type(action).__name__, f"an array of shape {self.action_space.shape}") from None
        if tuple(a.shape) != self.action_space.shape:
            raise ConfigError("action", f"shape {tuple(a.shape)}", f"shape {self.action_space.shape}")
        self._check_values("action", a)
        return a.to(self._device, self._dtype)

    def _check_values(self, name: str, a: torch.Tensor) -> None:
        if not bool(torch.isfinite(a).all()):
            raise ConfigError(name, "non-finite values (NaN or inf)", "finite numbers")
        low, high = self._low64.to(a.device), self._high64.to(a.device)
        bad = (a < low) | (a > high)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ConfigError(name, f"{float(a[idx]):.6g} at index {idx}",
                              f"values inside the action space: component {idx[-1]} in "
                              f"[{float(low[idx[-1]]):.6g}, {float(high[idx[-1]]):.6g}]")

    # ------------------------------------------------------------------ functional face
    def initial(self, seed: int | None = None):
        """The reset state (a tuple of tensors; the scenes are deterministic, `seed` is accepted for FuncEnv)."""
        return self._task.initial_state()

    def transition(self, state, action: torch.Tensor):
        """One control step from `state` (pure, differentiable with respect to state and action)."""
        return self._task.transition(state, action)

    def step_loss(self, t: int, state) -> torch.Tensor:
        """The task loss after control step t (1-based) in `state`; the gym reward is its negation."""
        self._ensure_goal()
        return self._task.step_loss(t, state)

    def observation(self, state) -> torch.Tensor:
        """The observation of `state` as a tensor."""
        return self._task.observe(state)

    def rollout_loss(self, actions: torch.Tensor, *, horizon: int | None = None) -> torch.Tensor:
        """Σ_t step loss over an open-loop episode from the reset state, differentiable w.r.t. `actions`.

        Args:
            actions: Shape (T, action_dim), 1 ≤ T ≤ the env's horizon, inside the action space.
                Any float dtype; gradients come back in it.
            horizon: Sum only the first H ≤ T steps' losses (FluidLab's expanding loss horizon);
                only those steps are simulated.

        Returns:
            The loss, a scalar tensor of the env's dtype (equal to minus the sum of the gym
            rewards of the same episode).

        Raises:
            ConfigError: wrong shape, non-finite or out-of-bounds actions (before any simulation).
            SimulationDiverged: the simulation produced NaN/inf or left its domain.
        """
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions, dtype=np.float64))
        A = self.action_space.shape[0]
        if actions.dim() != 2 or actions.shape[1] != A or not 1 <= actions.shape[0] <= self.horizon:
            raise ConfigError("actions", f"shape {tuple(actions.shape)}",
                              f"shape (T, {A}) with 1 ≤ T ≤ {self.horizon}")
        if not actions.is_floating_point():
            raise ConfigError("actions", f"dtype {actions.dtype}", "a floating-point tensor")
        self._check_values("actions", actions.detach().to("cpu", torch.float64))
        T = actions.shape[0]
        if horizon is not None:
            if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= T:
                raise ConfigError("horizon", horizon, f"None or an integer in [1, {T}]")
            T = horizon
        self._ensure_goal()
        a = actions[:T].to(self._device, self._dtype)
        task = self._task
        k, keep = self._checkpoint_plan(T)
        out = checkpointed_rollout(task.transition, task.initial_state(), a, (), checkpoint_every=k, keep_last=keep,
                                   observe=lambda t, s: task.step_loss(t + 1, s).reshape(()))
        return out.observations.sum()

    def _checkpoint_plan(self, T: int) -> tuple[int | None, int]:
        """(K, M) of a T-step `rollout_loss`: checkpoint every K-th state, keep the last M steps' graph.

        ``"auto"``: the whole graph when it fits the memory budget; else every K-th state, K
        balancing the stored states against one recomputed segment's graph, and no kept tail
        (M = 0). A tail recorded by the forward pass (`checkpointed_rollout(keep_last=M)`) saves the
        untaped forward of its M steps, but its taped arrays are all alive at once, so a first
        forward+backward takes them fresh from the system (about 17 MB a step on LatteArt: page
        faults and zero fills), where recomputed segments reuse one segment's recycled arrays.
        Measured on five tasks (docs/benchmarks.md, "Backward cost, third pass") the two cost
        about the same time, and without the tail the peak memory is 0.14–0.25 GB instead of
        0.93–1.21 GB. `checkpointed_rollout(keep_last=...)` remains for callers who want it.
        """
        if self.checkpoint_every != "auto":
            return self.checkpoint_every, 0
        state_bytes, step_bytes = self._task.memory_estimate()
        if T * step_bytes <= self.memory_budget:
            return None, 0
        return max(1, min(T, round(math.sqrt(T * state_bytes / step_bytes)))), 0

    def _ensure_goal(self) -> None:
        task = self._task
        if not getattr(task, "needs_goal", False) or task.loss_context.goal is not None:
            return
        from physim.envs.fluid.goals import load_or_record_goal

        task.loss_context.goal = load_or_record_goal(task, self.quality)

    # ------------------------------------------------------------------ export face
    @property
    def tool_axis_names(self) -> tuple[str, ...]:
        """Export axes of the (first) tool's controlled components (robot frame: z up)."""
        return tuple(self._axes()[0])

    @property
    def tool_units(self) -> tuple[str, ...]:
        return tuple("m" if n in ("tool_x", "tool_y", "tool_z") else "rad" for n in self.tool_axis_names)

    @property
    def tool_frame(self) -> str:
        return ("task frame: origin at the tool's start; tool_x = scene x, tool_y = -scene z, tool_z = scene y (up); "
                "angles accumulated about those axes")

    def _axes(self):
        tool = self.spec_task.tools[0]
        trans = sorted(((_TRANSLATION_AXIS[d], k) for k, d in enumerate(tool.dofs) if d in _TRANSLATION_AXIS),
                       key=lambda e: e[0][0])
        rot = sorted(((_ROTATION_AXIS[d], k) for k, d in enumerate(tool.dofs) if d in _ROTATION_AXIS),
                     key=lambda e: ("tool_roll", "tool_pitch", "tool_yaw").index(e[0][0]))
        names = [e[0][0] for e in trans] + [e[0][0] for e in rot]
        return names, trans, rot

    def tool_path(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Knot times [s] (T+1,) and positions (T+1, axes) of the first tool in the export frame.

        Translations are the tool origin's positions relative to its start (workspace limits
        applied, as in the simulation); rotations are the accumulated commanded angles, exact
        for tasks that turn about one axis (all of FluidLab's).
        """
        a = torch.as_tensor(actions, dtype=torch.float64).detach().cpu()
        A = self.action_space.shape[0]
        if a.dim() != 2 or a.shape[1] != A:
            raise ConfigError("actions", f"shape {tuple(a.shape)}", f"shape (T, {A})")
        from physim.envs.fluid.kinematics import ToolKinematics

        kin = ToolKinematics(self.spec_task.tools, self.control_dt, torch.float64, torch.device("cpu"))
        n_pose = sum(len(t.dofs) for t in self.spec_task.tools)  # non-pose components (a fan's strength) follow
        poses = kin.path(a[:, :n_pose])[:, 0]
        _, trans, rot = self._axes()
        cols = []
        for (_, comp, sign), _k in trans:
            cols.append(sign * (poses[:, comp] - poses[0, comp]))
        first = self._first_tool_slice()
        for (_, sign), k in rot:
            ang = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(a[:, first + k] * self.control_dt, 0)])
            cols.append(sign * ang)
        times = torch.arange(a.shape[0] + 1, dtype=torch.float64) * self.control_dt
        return times, torch.stack(cols, dim=1)

    def actions_from_tool(self, positions: torch.Tensor) -> torch.Tensor:
        """Inverse of `tool_path` (exact while the workspace limits do not bind): knots → actions."""
        p = torch.as_tensor(positions, dtype=torch.float64)
        _, trans, rot = self._axes()
        rates = torch.diff(p, dim=0) / self.control_dt
        out = torch.zeros(p.shape[0] - 1, self.action_space.shape[0], dtype=torch.float64)
        first = self._first_tool_slice()
        for j, ((_, _comp, sign), k) in enumerate(trans):
            out[:, first + k] = sign * rates[:, j]
        for j, ((_, sign), k) in enumerate(rot):
            out[:, first + k] = sign * rates[:, len(trans) + j]
        return out

    @staticmethod
    def _first_tool_slice() -> int:
        return 0  # the first tool's components lead the action vector

    def demo_actions(self) -> np.ndarray:
        """The task's scripted motion (the one that records the goal of shape-matching tasks), (horizon, A)."""
        return self._task.demo_actions().detach().cpu().numpy().astype(np.float32)

    def __repr__(self) -> str:
        return f"FluidEnv({self.task_name!r}, quality={self.quality!r}, horizon={self.horizon})"
