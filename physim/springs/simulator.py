"""Backend-independent part of the mass-spring chain simulators.

The chain is the smallest simulator that follows physim's contract (config, pure
`step`, `rollout`, `params`), and is the system the autodiff bridge is proven on.
Backends implement only `_advance`, one control step as one differentiable op.
"""

from __future__ import annotations

import math

import torch

from physim.autodiff import RolloutResult, checkpointed_rollout
from physim.errors import SimulationDiverged
from physim.runtime import device as default_device
from physim.springs.config import ChainConfig, ChainState

__all__ = ["ChainSimulator"]


class ChainSimulator:
    """Base class: see `WarpChain` and `TaichiChain`.

    Attributes:
        cfg: The validated configuration.
        params: Differentiable physical parameters, float64 tensors of shape (1,):
            ``"stiffness"`` [N/m] and ``"damping"`` [N·s/m]. Set ``requires_grad`` on
            them to learn them.
    """

    backend = "none"

    def __init__(self, cfg: ChainConfig | None = None, *, device: torch.device | str | None = None):
        self.cfg = cfg if cfg is not None else ChainConfig()
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = torch.float64
        opts = {"dtype": self.dtype, "device": self.device}
        self.params = {
            "stiffness": torch.tensor([self.cfg.stiffness], **opts),
            "damping": torch.tensor([self.cfg.damping], **opts),
        }
        free = torch.ones(self.cfg.particle_count, **opts)
        if self.cfg.pinned:
            free[0] = 0.0
        self._free = free

    # -- contract -----------------------------------------------------------------------------
    def reset(self, seed: int | None = None, *, velocity: torch.Tensor | None = None) -> ChainState:
        """The chain at rest length along +x from the origin.

        Args:
            seed: Accepted for the simulator contract; the initial state is deterministic.
            velocity: Optional initial velocities [m/s], shape (particle_count, 2).
        """
        n = self.cfg.particle_count
        opts = {"dtype": self.dtype, "device": self.device}
        x = torch.zeros(n, 2, **opts)
        x[:, 0] = torch.arange(n, **opts) * self.cfg.rest_length
        v = torch.zeros(n, 2, **opts) if velocity is None else self._check_shape("velocity", velocity)
        return ChainState(x=x, v=v * self._free[:, None], time=torch.zeros((), **opts))

    def step(self, state: ChainState, action: torch.Tensor | None = None) -> ChainState:
        """Advance one control step (`cfg.substeps` substeps); `state` is not modified.

        Args:
            state: Current state.
            action: External force on each particle [N], shape (particle_count, 2),
                constant over the control step; None means no force.
        """
        return self._step(state, action, self.params["stiffness"], self.params["damping"])

    def rollout(
        self,
        state: ChainState,
        actions: torch.Tensor,
        *,
        checkpoint_every: int | None = None,
        observe=None,
    ) -> RolloutResult:
        """Differentiable rollout over ``actions.shape[0]`` control steps.

        Args:
            state: Initial state.
            actions: External forces [N], shape (T, particle_count, 2).
            checkpoint_every: Store every K-th state and recompute in backward (memory
                O(T/K + K)); None keeps the whole graph.
            observe: ``observe(t, state) -> tensor``, stacked into the result.
        """
        if not isinstance(actions, torch.Tensor) or actions.dim() != 3:
            got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
            raise ValueError(f"actions has shape {got}: expected (T, {self.cfg.particle_count}, 2)")
        actions = self._check_shape("actions", actions, leading=(actions.shape[0],))
        return checkpointed_rollout(
            self._step,
            state,
            actions,
            (self.params["stiffness"], self.params["damping"]),
            checkpoint_every=checkpoint_every,
            observe=observe,
        )

    # -- internals --------------------------------------------------------------------------
    def _check_shape(self, name: str, t: torch.Tensor, leading: tuple[int, ...] = ()) -> torch.Tensor:
        expected = (*leading, self.cfg.particle_count, 2)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != expected:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} has shape {got}: expected {expected}")
        return t.to(self.device, self.dtype)

    def _step(self, state: ChainState, action, stiffness, damping) -> ChainState:
        if action is None:
            action = torch.zeros_like(state.x)
        else:
            action = self._check_shape("action", action)
        x, v = self._advance(state.x, state.v, action, stiffness, damping)
        if not bool(torch.isfinite(x).all() & torch.isfinite(v).all()):
            substep = round(float(state.time) / self.cfg.dt) + self.cfg.substeps
            bad = "x" if not bool(torch.isfinite(x).all()) else "v"
            raise SimulationDiverged(substep, f"particle_{bad}", "contains NaN or inf (stiffness or dt too large?)")
        return ChainState(x=x, v=v, time=state.time + self.cfg.control_dt)

    def _advance(self, x, v, f_ext, stiffness, damping):  # pragma: no cover - abstract
        raise NotImplementedError

    def energy(self, state: ChainState) -> torch.Tensor:
        """Total mechanical energy [J]: kinetic + spring + gravitational, shape ()."""
        cfg = self.cfg
        kinetic = 0.5 * cfg.mass * (state.v**2).sum()
        d = state.x[1:] - state.x[:-1]
        stretch = torch.linalg.norm(d, dim=1) - cfg.rest_length
        spring = 0.5 * self.params["stiffness"][0] * (stretch**2).sum()
        potential = cfg.mass * cfg.gravity * (state.x[:, 1] * self._free).sum()
        return kinetic + spring + potential

    def __repr__(self) -> str:
        return f"{type(self).__name__}(particle_count={self.cfg.particle_count}, device={self.device})"


def natural_period(cfg: ChainConfig) -> float:
    """Period of the stiffest chain mode [s], 2π/ω with ω = 2√(k/m)."""
    return 2 * math.pi / (2 * math.sqrt(cfg.stiffness / cfg.mass))
