"""What GNS and GIOROM share: GNS's step conventions, training loss and rollouts.

A model maps a position history (count, history, dim) to a normalised acceleration per
particle; the step is semi-implicit Euler with a unit time step,
``v_{t+1} = (x_t − x_{t−1}) + a``, ``x_{t+1} = x_t + v_{t+1}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError, SimulationDiverged

from ..base import OperatorBase
from .dataset import Trajectory
from .features import Normalizer, node_features, random_walk_noise

__all__ = ["LagrangianModel"]


def _check_bounds(bounds, dim: int) -> None:
    if bounds is None:
        return
    ok = (isinstance(bounds, (list, tuple)) and len(bounds) == 2
          and all(isinstance(b, (list, tuple)) and len(b) == dim for b in bounds))
    if ok:
        ok = all(math.isfinite(v) for b in bounds for v in b) and all(h > l for l, h in zip(*bounds))
    if not ok:
        raise ConfigError("bounds", bounds, f"None or [[lo]*{dim}, [hi]*{dim}] with finite hi > lo [m]")


class LagrangianModel(OperatorBase):
    """Base class of learned particle simulators (not registered itself).

    Subclasses call `_init_common` from their constructor and implement `predict`.
    """

    def _init_common(self, *, dim: int, history: int, radius: float, bounds, num_types: int, type_dim: int,
                     noise_std: float) -> None:
        check_int("dim", dim, 1, 3)
        check_int("history", history, 2)
        check_positive("radius", radius)
        _check_bounds(bounds, dim)
        check_int("num_types", num_types, 1)
        check_int("type_dim", type_dim, 0)
        check_range("noise_std", noise_std, 0.0)
        self.dim, self.history, self.radius, self.noise_std = dim, history, float(radius), float(noise_std)
        self.normalizer = Normalizer(dim)
        self.embedding = nn.Embedding(num_types, type_dim) if num_types > 1 and type_dim > 0 else None
        self.num_types = num_types
        self.register_buffer("bounds", None if bounds is None else torch.tensor(bounds, dtype=torch.float32))
        self.node_in = (history - 1) * dim + (2 * dim if bounds is not None else 0) + (
            type_dim if self.embedding is not None else 0)

    # -- data statistics -------------------------------------------------------------------
    def fit_statistics(self, trajectories: Sequence[Trajectory | torch.Tensor], frame_stride: int = 1) -> None:
        """Set the velocity/acceleration normalisation from training trajectories (call before training)."""
        arrays = [t.positions if isinstance(t, Trajectory) else t for t in trajectories]
        self.normalizer.fit(arrays, self.noise_std, frame_stride)

    # -- the step --------------------------------------------------------------------------
    def _features(self, history: torch.Tensor, particle_type: torch.Tensor, bounds: torch.Tensor | None,
                  radius: float) -> torch.Tensor:
        emb = self.embedding(particle_type) if self.embedding is not None else None
        return node_features(history, self.normalizer, radius=radius, bounds=bounds, type_embedding=emb)

    def _bounds(self, bounds: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        if self.bounds is None:
            return None
        b = self.bounds if bounds is None else bounds
        return b.to(like)

    def _check_history(self, history: torch.Tensor, particle_type: torch.Tensor) -> None:
        if history.dim() != 3 or history.shape[1] != self.history or history.shape[2] != self.dim:
            raise ConfigError("positions", f"tensor of shape {tuple(history.shape)}",
                              f"shape (particles, {self.history}, {self.dim})")
        if particle_type.shape != history.shape[:1]:
            raise ConfigError("particle_type", f"tensor of shape {tuple(particle_type.shape)}",
                              f"shape ({history.shape[0]},)")

    def predict(self, history: torch.Tensor, particle_type: torch.Tensor, batch: torch.Tensor | None = None,
                bounds: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised acceleration of each particle, shape (count, dim).

        Args:
            history: Positions [m], shape (count, history, dim), oldest first.
            particle_type: Material index per particle, shape (count,).
            batch: Graph index per particle (several scenes in one call), or None.
            bounds: Domain box [m], shape (2, dim), overriding the model's (a translated scene).
        """
        raise NotImplementedError

    def acceleration(self, history, particle_type, batch=None, bounds=None) -> torch.Tensor:
        """Acceleration [m/step²], shape (count, dim)."""
        a = self.predict(history, particle_type, batch, bounds)
        return a * self.normalizer.acc_std.to(a) + self.normalizer.acc_mean.to(a)

    def next_positions(self, history, particle_type, batch=None, bounds=None) -> torch.Tensor:
        """Semi-implicit Euler step: positions [m] one model step after `history`, shape (count, dim)."""
        a = self.acceleration(history, particle_type, batch, bounds)
        x, x_prev = history[:, -1], history[:, -2]
        return x + (x - x_prev) + a

    @torch.no_grad()
    def rollout(self, history: torch.Tensor, particle_type: torch.Tensor, steps: int, *,
                batch: torch.Tensor | None = None, bounds: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted positions [m] of `steps` model steps after `history`, shape (steps, count, dim).

        Raises:
            SimulationDiverged: when a predicted position is not finite.
        """
        check_int("steps", steps, 1)
        self._check_history(history, particle_type)
        out = []
        window = history
        for t in range(steps):
            nxt = self.next_positions(window, particle_type, batch, bounds)
            if not bool(torch.isfinite(nxt).all()):
                bad = int((~torch.isfinite(nxt)).any(dim=1).sum())
                raise SimulationDiverged(t, "positions", f"of {bad} particles are not finite")
            out.append(nxt)
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
        return torch.stack(out)

    # -- training --------------------------------------------------------------------------
    def one_step_loss(self, positions: torch.Tensor, particle_type: torch.Tensor,
                      batch: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """GNS loss: MSE of the normalised acceleration from a noisy history.

        During training (``self.training``) the history gets random-walk noise of final
        standard deviation `noise_std`, and the target is adjusted so the model learns to
        return to the true next position: ``a* = (x_{t+1} + n_t) − 2 x̃_t + x̃_{t−1}``.

        Args:
            positions: Positions [m], shape (count, history + 1, dim): history, then the target frame.
        """
        history, target = positions[:, : self.history], positions[:, self.history]
        if self.training and self.noise_std > 0:
            noise = random_walk_noise(history, self.noise_std)
            history = history + noise
            target = target + noise[:, -1]
        acc = target - 2 * history[:, -1] + history[:, -2]
        norm = self.normalizer
        acc_n = (acc - norm.acc_mean.to(acc)) / norm.acc_std.to(acc)
        pred = self.predict(history, particle_type, batch)
        loss = torch.mean((pred - acc_n) ** 2)
        return loss, {"acc_mse": float(loss.detach())}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one collated batch of windows (see `collate_windows`)."""
        return self.one_step_loss(batch["positions"], batch["particle_type"], batch.get("batch"))
