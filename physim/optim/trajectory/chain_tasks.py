"""Manipulation tasks on the Warp mass-spring chain: a robot moves one end of a hanging chain.

The tool (a gripper holding particle 0) moves in the vertical plane; the actions are its
velocities [m/s], shape (T, 2) (horizontal, vertical), held for one control step each,
like FluidLab's effector-velocity actions. The chain itself is `physim.springs.WarpChain`
with gradients through Warp's tape, so every task is differentiable with respect to the
actions. Three tasks of different character:

- ``track``: the free end follows a goal path recorded from a scripted tool motion (so
  it is reachable); per-step squared distance, a sum that supports an expanding horizon.
- ``swingup``: from hanging at rest, bring the chain upright above the tool; the loss
  weights the distance of the free end to the upright position increasingly over time.
  Many local optima (direction and number of pumping swings).
- ``throw``: from hanging at rest, make the free end pass through a target point at
  some moment of the second half of the episode: a minimum over time, non-smooth. With
  ``anneal = w`` the minimum becomes a soft minimum of temperature ``w · 0.01 m²``.

Every task adds a penalty on tool accelerations (so the motion can be exported to a
real arm) and on leaving the tool's workspace box. Positions are in the task frame:
origin at the tool's start, x horizontal, z up; the export maps it to a robot base frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from physim.autodiff import checkpointed_rollout
from physim.config import check_choice, check_int, check_positive, check_range
from physim.optim.trajectory.problem import TorchLossProblem

__all__ = ["CHAIN_TASKS", "ChainTask", "ChainTaskConfig"]

CHAIN_TASKS = ("track", "swingup", "throw")


@dataclass(frozen=True, kw_only=True)
class ChainTaskConfig:
    """Settings of a chain manipulation task."""

    task: str = "track"
    """One of "track", "swingup", "throw"."""
    particles: int = 8
    """Particles of the chain (particle 0 is held by the tool)."""
    rest_length: float = 0.05
    """Spring rest length [m]; the chain is (particles − 1) × rest_length long."""
    stiffness: float = 300.0
    """Spring stiffness [N/m]."""
    damping: float = 0.3
    """Spring damping [N·s/m]."""
    mass: float = 0.02
    """Particle mass [kg]."""
    steps: int = 50
    """Control steps T (10 substeps of 1 ms each)."""
    max_speed: float = 1.0
    """Bound on each tool velocity component [m/s]."""
    workspace: float = 0.3
    """Half-width of the tool's workspace box around its start [m]."""
    smoothness: float = 1e-6
    """Weight of the mean squared tool acceleration [(m/s²)²] in the loss."""
    checkpoint_every: int | None = None
    """Checkpoint interval of the differentiable rollout (None: keep the whole graph)."""

    def __post_init__(self) -> None:
        check_choice("task", self.task, CHAIN_TASKS)
        check_int("particles", self.particles, 2, 1000)
        check_positive("rest_length", self.rest_length)
        check_positive("stiffness", self.stiffness)
        check_range("damping", self.damping, 0.0)
        check_positive("mass", self.mass)
        check_int("steps", self.steps, 2, 100_000)
        check_positive("max_speed", self.max_speed)
        check_positive("workspace", self.workspace)
        check_range("smoothness", self.smoothness, 0.0)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, 1)


class ChainTask:
    """A chain task: its differentiable `problem`, initial actions, tool path and rendering.

    Args:
        cfg: The task settings.
        device: Torch device (default: physim's device).
    """

    axis_names = ("tool_x", "tool_z")
    units = ("m", "m")
    frame = "task: origin at the tool's start, x horizontal, z up"

    def __init__(self, cfg: ChainTaskConfig | None = None, *, device=None):
        from physim.springs import ChainConfig, ChainState, WarpChain

        self.cfg = cfg = cfg or ChainTaskConfig()
        self.sim = WarpChain(ChainConfig(particle_count=cfg.particles, rest_length=cfg.rest_length, mass=cfg.mass,
                                         stiffness=cfg.stiffness, damping=cfg.damping, dt=1e-3, substeps=10),
                             device=device)
        self._ChainState = ChainState
        self.dtype = torch.float64
        self.device = self.sim.device
        self.control_dt = self.sim.cfg.control_dt
        opts = {"dtype": self.dtype, "device": self.device}
        self.length = (cfg.particles - 1) * cfg.rest_length
        if cfg.task == "track":
            s = self.sim.reset()
            self.x0, self.v0 = s.x, s.v
        else:
            self.x0, self.v0 = self._hanging()
        self.anchor0 = self.x0[0].clone()
        T = cfg.steps
        self.init_actions = torch.zeros(T, 2, **opts)
        if cfg.task == "track":
            # The goal: where the free end goes under a scripted circular tool motion.
            t = torch.arange(T, **opts) * self.control_dt
            w = 2 * math.pi / 0.5  # one circle every 0.5 s (the default horizon)
            scripted = 0.4 * cfg.max_speed * torch.stack([torch.cos(w * t), torch.sin(w * t)], dim=1)
            with torch.no_grad():
                self.goal = self._rollout(scripted)[0]
        elif cfg.task == "throw":
            self.target = self.anchor0 + torch.tensor([0.6 * self.length, 0.5 * self.length], **opts)
        self.problem = TorchLossProblem(
            self.loss if cfg.task != "throw" else self._throw_loss, (T, 2),
            lower=-cfg.max_speed, upper=cfg.max_speed, dtype=self.dtype, name=f"chain-{cfg.task}",
        )
        # Compile the Warp kernels (and their adjoints) now, not inside the first timed call.
        a = self.init_actions[:2].clone().requires_grad_(True)
        self._rollout(a)[0].sum().backward()

    # -- simulation --------------------------------------------------------------------------
    def _hanging(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The chain hanging at rest below the tool: settled with strong air drag."""
        from physim.springs import ChainConfig, WarpChain

        c = self.sim.cfg
        settle = WarpChain(ChainConfig(particle_count=c.particle_count, rest_length=c.rest_length, mass=c.mass,
                                       stiffness=c.stiffness, damping=c.damping, drag=0.5, dt=c.dt,
                                       substeps=c.substeps), device=self.device)
        n = c.particle_count
        x = torch.zeros(n, 2, dtype=self.dtype, device=self.device)
        x[:, 1] = -torch.arange(n, dtype=self.dtype, device=self.device) * c.rest_length
        state = self._ChainState(x=x, v=torch.zeros_like(x), time=torch.zeros((), dtype=self.dtype))
        with torch.no_grad():
            for _ in range(100):
                state = settle.step(state)
        return state.x.clone(), torch.zeros_like(state.x)

    def _step(self, state, action):
        x, v, t, anchor = state
        anchor = anchor + action * self.control_dt
        # The tool holds particle 0 (pinned, so the substeps leave it where the tool put it).
        x = torch.cat([anchor[None], x[1:]])
        s = self.sim.step(self._ChainState(x=x, v=v, time=t))
        return (s.x, s.v, s.time, anchor)

    def _rollout(self, actions: torch.Tensor, *, full: bool = False):
        """(free-end path (T, 2), tool path (T, 2)[, chain positions (T, n, 2)]) after each step."""
        state = (self.x0, self.v0, torch.zeros((), dtype=self.dtype, device=self.device), self.anchor0)
        observe = (lambda t, s: torch.cat([s[0], s[3][None]])) if full else (lambda t, s: torch.stack([s[0][-1], s[3]]))
        out = checkpointed_rollout(self._step, state, actions, checkpoint_every=self.cfg.checkpoint_every,
                                   observe=observe)
        obs = out.observations
        if full:
            return obs[:, -1], obs[:, -1], obs[:, :-1]
        return obs[:, 0], obs[:, 1]

    def _penalties(self, actions: torch.Tensor, tool: torch.Tensor, h: int) -> torch.Tensor:
        cfg = self.cfg
        acc = torch.diff(torch.cat([torch.zeros_like(actions[:1]), actions[:h]]), dim=0) / self.control_dt
        out = cfg.smoothness * (acc**2).sum(-1).mean()
        excess = torch.relu((tool[:h] - self.anchor0).abs() - cfg.workspace)
        return out + 10.0 * (excess**2).sum(-1).mean()

    def loss(self, actions: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        """Task loss [m²] of the `track` and `swingup` tasks over the first `horizon` steps."""
        cfg = self.cfg
        T = cfg.steps
        h = T if horizon is None else horizon
        end, tool = self._rollout(actions[:h])
        if cfg.task == "track":
            per_step = ((end - self.goal[:h]) ** 2).sum(-1)
            task = per_step.mean()
        else:
            upright = tool + torch.tensor([0.0, self.length], dtype=self.dtype, device=self.device)
            # Weights grow with time: being upright at the end matters most. The normaliser is
            # that of the full horizon, so a truncated loss is a partial sum of the full one.
            w = (torch.arange(1, T + 1, dtype=self.dtype, device=self.device) / T) ** 2
            task = (w[:h] * ((end - upright) ** 2).sum(-1)).sum() / w.sum()
        return task + self._penalties(actions, tool, h)

    def _throw_loss(self, actions: torch.Tensor, anneal: float = 0.0) -> torch.Tensor:
        T = self.cfg.steps
        end, tool = self._rollout(actions)
        d = ((end[T // 2:] - self.target) ** 2).sum(-1)
        if anneal > 0:
            tau = anneal * 0.01
            task = -tau * (torch.logsumexp(-d / tau, dim=0) - math.log(d.numel()))
        else:
            task = d.min()
        return task + self._penalties(actions, tool, T)

    # -- what the export and the run folder need -----------------------------------------------
    def tool_path(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Knot times [s], shape (T+1,), and tool positions [m] in the task frame, shape (T+1, 2)."""
        a = torch.as_tensor(actions, dtype=self.dtype).detach().cpu()
        pos = torch.cat([torch.zeros(1, 2, dtype=self.dtype), torch.cumsum(a * self.control_dt, dim=0)])
        times = torch.arange(a.shape[0] + 1, dtype=self.dtype) * self.control_dt
        return times, pos

    def actions_from_tool(self, positions: torch.Tensor) -> torch.Tensor:
        """Inverse of `tool_path`: tool positions at the knots (T+1, 2) → velocities (T, 2)."""
        p = torch.as_tensor(positions, dtype=self.dtype)
        return torch.diff(p, dim=0) / self.control_dt

    def frames(self, actions: torch.Tensor, *, count: int = 40) -> list:
        """RGB frames (numpy arrays) of the chain under `actions`, for a video."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        with torch.no_grad():
            _, tool, chain = self._rollout(torch.as_tensor(actions, dtype=self.dtype, device=self.device), full=True)
        chain = chain.cpu().numpy()
        tool = tool.cpu().numpy()
        pts = chain.reshape(-1, 2)
        lo, hi = pts.min(0) - 0.05, pts.max(0) + 0.05
        if self.cfg.task == "track":
            extra = ("goal path", self.goal.cpu().numpy())
        elif self.cfg.task == "throw":
            extra = ("target", self.target.cpu().numpy()[None])
        else:
            extra = None
        # One figure, artists updated per frame: creating a figure per frame costs ~0.3 s each.
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
        (path_line,) = ax.plot([], [], color="0.7", lw=1, label="tool path")
        (chain_line,) = ax.plot([], [], "-o", ms=3, color="C0", label="chain")
        (tool_mark,) = ax.plot([], [], "s", ms=7, color="C3", label="tool")
        if extra is not None:
            label, xy = extra
            style = {"ls": "--", "color": "C2"} if len(xy) > 1 else {"marker": "*", "ms": 12, "ls": "none",
                                                                     "color": "C2"}
            ax.plot(xy[:, 0], xy[:, 1], label=label, **style)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal", adjustable="box")
        ax.legend(loc="upper right", fontsize=7)
        title = ax.set_title("")
        fig.tight_layout()
        images = []
        for i in np.linspace(0, chain.shape[0] - 1, min(count, chain.shape[0])).round().astype(int):
            path_line.set_data(tool[: i + 1, 0], tool[: i + 1, 1])
            chain_line.set_data(chain[i, :, 0], chain[i, :, 1])
            tool_mark.set_data([chain[i, 0, 0]], [chain[i, 0, 1]])
            title.set_text(f"{self.cfg.task}: t = {(i + 1) * self.control_dt:.2f} s")
            fig.canvas.draw()
            images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
        return images


def chain_marker_model(*, particles: int = 6, steps: int = 40, markers: tuple[int, ...] = (2, 5),
                       stiffness: float = 200.0, damping: float = 0.2, device=None):
    """A system-identification scene: a chain released horizontally, observed through tracked markers.

    Returns ``simulate(params) -> positions``: the markers' positions [m], shape
    (steps, len(markers), 2), for a dict with ``"stiffness"`` [N/m] and ``"damping"``
    [N·s/m] (0-d tensors, differentiable through Warp). `stiffness` and `damping` only
    size the simulator's stability check and its default parameters.
    """
    from physim.springs import ChainConfig, WarpChain

    sim = WarpChain(ChainConfig(particle_count=particles, stiffness=stiffness, damping=damping, dt=1e-3,
                                substeps=10), device=device)
    idx = list(markers)
    if not idx or min(idx) < 0 or max(idx) >= particles:
        from physim.errors import ConfigError

        raise ConfigError("markers", markers, f"particle indices in [0, {particles - 1}]")
    zeros = torch.zeros(steps, particles, 2, dtype=torch.float64, device=sim.device)

    def simulate(params: dict[str, torch.Tensor]) -> torch.Tensor:
        sim.params["stiffness"] = params["stiffness"].reshape(1).to(sim.device)
        sim.params["damping"] = params["damping"].reshape(1).to(sim.device)
        out = sim.rollout(sim.reset(), zeros, observe=lambda t, s: s.x[idx])
        return out.observations

    return simulate
