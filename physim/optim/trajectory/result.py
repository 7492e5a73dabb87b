"""The outcome of `optimize`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from physim.optim.trajectory.evaluator import CallRecord

__all__ = ["Result"]


@dataclass
class Result:
    """What `optimize` returns.

    Attributes:
        method: The method's name.
        best_actions: Actions of the lowest true loss found, shape `problem.action_shape`.
        best_loss: That loss (full horizon, no annealing).
        initial_loss: True loss of the initial actions.
        history: One `CallRecord` per simulator call, in order.
        wall_time: Wall time of the optimisation [s] (logged time for replayed calls).
        budget: The budget, in forward calls over the full horizon.
        cost_used: Budget used.
        grad_cost: Charge of one gradient call, in forward calls (None if no gradient was used).
        seed: The seed.
        n_forward: Forward calls made.
        n_gradient: Gradient calls made.
        info: Method-specific details (phases of `hybrid`, the horizon schedule of `gradient`...).
    """

    method: str
    best_actions: torch.Tensor
    best_loss: float
    initial_loss: float
    history: list[CallRecord]
    wall_time: float
    budget: float
    cost_used: float
    grad_cost: float | None
    seed: int
    n_forward: int
    n_gradient: int
    info: dict = field(default_factory=dict)

    def curve(self) -> tuple[list[float], list[float]]:
        """(cumulative cost, best true loss so far) after every call, for loss-versus-calls plots."""
        return [r.cumulative_cost for r in self.history], [r.best_loss for r in self.history]

    def best_at(self, cost: float) -> float:
        """Best true loss found within the first `cost` units of budget."""
        best = math.inf
        for r in self.history:
            if r.cumulative_cost > cost + 1e-9:
                break
            best = r.best_loss
        return best

    def to_dict(self, *, actions: bool = False) -> dict:
        """JSON-ready summary (history included; the actions only when asked)."""
        out = {
            "method": self.method,
            "best_loss": self.best_loss,
            "initial_loss": self.initial_loss,
            "wall_time": self.wall_time,
            "budget": self.budget,
            "cost_used": self.cost_used,
            "grad_cost": self.grad_cost,
            "seed": self.seed,
            "n_forward": self.n_forward,
            "n_gradient": self.n_gradient,
            "info": self.info,
            "history": [r.to_dict() for r in self.history],
        }
        if actions:
            out["best_actions"] = self.best_actions.tolist()
        return out

    def __repr__(self) -> str:
        return (f"Result(method={self.method!r}, best_loss={self.best_loss:.6g}, initial_loss={self.initial_loss:.6g}, "
                f"calls={len(self.history)}, cost_used={self.cost_used:.1f}/{self.budget:g}, "
                f"wall_time={self.wall_time:.2f} s)")
