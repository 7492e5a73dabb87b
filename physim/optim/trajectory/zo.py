"""Method ``zo``: two-point zeroth-order gradient estimates (SPSA/MeZO-style) for black-box losses.

Each step estimates the gradient in the (optionally coarse) action space with
``physim.optim.zeroth_order.spsa_gradient`` (n random directions, 2n simulator calls,
evaluated as one batch) and hands it to a first-order optimizer from physim's registry
(Adam by default). Only loss values are used, so it works on any `Problem`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.gradient import make_optimizer
from physim.optim.trajectory.space import SearchSpace, default_sigma

__all__ = ["ZOConfig", "run_zo"]


@dataclass(frozen=True, kw_only=True)
class ZOConfig:
    """Settings of the ``zo`` method."""

    n_perturbations: int = 4
    """Random directions per gradient estimate (2 simulator calls each)."""
    eps: float | None = None
    """Perturbation scale [action units]; None: 0.05 × the sampling spread of `default_sigma`."""
    distribution: str = "rademacher"
    """Directions: "rademacher" (SPSA) or "gaussian" (MeZO)."""
    optimizer: str = "adam"
    """First-order optimizer applied to the estimates."""
    lr: float | None = None
    """Learning rate; None: 0.1 × the sampling spread."""
    knots: int | None = 8
    """Knots per action component along the time axis (None: every entry)."""

    def __post_init__(self) -> None:
        check_int("n_perturbations", self.n_perturbations, 1)
        if self.eps is not None:
            check_range("eps", self.eps, 0.0, low_inclusive=False)
        check_choice("distribution", self.distribution, ("rademacher", "gaussian"))
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, low_inclusive=False)
        if self.knots is not None:
            check_int("knots", self.knots, 1)


def run_zo(ev: Evaluator, init: torch.Tensor, cfg: ZOConfig, seed: int, info: dict) -> None:
    """The ``zo`` method."""
    try:
        from physim.optim.zeroth_order import spsa_gradient
    except ImportError:
        raise ConfigError("method", "zo", "another method: physim.optim.zeroth_order (issue 10) is not installed") \
            from None
    problem = ev.problem
    ev.phase = "zo"
    space = SearchSpace(problem, init, cfg.knots)
    sigma = default_sigma(problem)
    eps = cfg.eps if cfg.eps is not None else 0.05 * sigma
    z = torch.zeros(space.dim, dtype=problem.dtype, requires_grad=True)
    opt = make_optimizer(cfg.optimizer, [z], cfg.lr if cfg.lr is not None else 0.1 * sigma, {})
    gen = torch.Generator().manual_seed(seed)

    def batch(Z: torch.Tensor) -> torch.Tensor:
        return torch.tensor(ev.batch_loss(space.to_actions(Z)), dtype=problem.dtype)

    steps = 0
    while ev.affordable("forward") >= 2 * cfg.n_perturbations:
        g = spsa_gradient(batch, z.detach(), n_perturbations=cfg.n_perturbations, eps=eps,
                          distribution=cfg.distribution, generator=gen, batched=True)
        # Diverged perturbations give inf losses and a non-finite estimate: skip that step.
        if not bool(torch.isfinite(g).all()):
            continue
        opt.zero_grad()
        z.grad = g
        opt.step()
        steps += 1
    info["zo_steps"] = steps
