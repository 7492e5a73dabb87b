"""Method ``cmaes``: CMA-ES through the `cmaes` package (ask/tell), over the (optionally coarse) action space.

The package is numpy-based; populations are converted to torch action tensors and
evaluated through the evaluator, so every sample is charged. When the remaining budget
cannot pay for a full generation, the partial generation is still evaluated (its best
counts) but not told to CMA-ES, which needs complete generations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physim.config import check_int, check_range
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.space import SearchSpace, default_sigma

__all__ = ["CMAESConfig", "cmaes_search", "default_population", "run_cmaes"]


@dataclass(frozen=True, kw_only=True)
class CMAESConfig:
    """Settings of the ``cmaes`` method."""

    population: int | None = None
    """Samples per generation; None: CMA-ES's default 4 + ⌊3 ln(dim)⌋."""
    sigma: float | None = None
    """Initial step size [action units]; None: a quarter of the mean bounded range, or 1."""
    knots: int | None = 8
    """Search K knots per action component along the time axis of (T, ...) actions (None: every entry)."""

    def __post_init__(self) -> None:
        if self.population is not None:
            check_int("population", self.population, 2)
        if self.sigma is not None:
            check_range("sigma", self.sigma, 0.0, low_inclusive=False)
        if self.knots is not None:
            check_int("knots", self.knots, 1)


def default_population(dim: int) -> int:
    """CMA-ES's default population for a search space of `dim` dimensions: 4 + ⌊3 ln dim⌋ (Hansen)."""
    return 4 + math.floor(3 * math.log(max(dim, 1)))


def cmaes_search(ev: Evaluator, center: torch.Tensor, cfg: CMAESConfig, seed: int, *,
                 sigma_scale: float = 1.0, population_scale: int = 1, max_cost: float | None = None,
                 on_generation=None) -> torch.Tensor:
    """Run CMA-ES around `center` until the budget (or `max_cost` of it) is spent or `on_generation` says stop.

    ``on_generation(values)`` receives each generation's losses and returns True to stop.

    Returns:
        The actions of the best sample found in this search.
    """
    from cmaes import CMA

    problem = ev.problem
    sigma0 = (cfg.sigma if cfg.sigma is not None else default_sigma(problem)) * sigma_scale

    def start(centre: torch.Tensor, restart: int):
        space = SearchSpace(problem, centre, cfg.knots)
        bounds = space.bounds()
        np_bounds = None
        if bounds is not None:
            lo, hi = (b.numpy() for b in bounds)
            # The `cmaes` package needs finite bounds; an unbounded side gets a far-away wall.
            far = 1e6 * max(1.0, sigma0)
            np_bounds = np.stack([np.where(np.isfinite(lo), lo, -far), np.where(np.isfinite(hi), hi, far)], axis=1)
        pop = cfg.population if cfg.population is not None else default_population(space.dim)
        opt = CMA(mean=np.zeros(space.dim), sigma=sigma0, bounds=np_bounds, seed=seed + 7919 * restart,
                  population_size=max(2, pop * population_scale))
        return space, opt

    space, opt = start(center, 0)
    restarts = 0
    stop_at = ev.budget if max_cost is None else min(ev.budget, ev.cost_used + max_cost)
    best_x, best_f = problem.project(center.clone()), math.inf
    while True:
        n = min(opt.population_size, math.floor(stop_at - ev.cost_used + 1e-9), ev.affordable("forward"))
        if n < 1:
            break
        zs = np.stack([opt.ask() for _ in range(n)])
        xs = space.to_actions(torch.from_numpy(zs))
        f = ev.batch_loss(xs)
        i = int(np.argmin(f))
        if f[i] < best_f:
            best_f, best_x = f[i], xs[i].clone()
        if n < opt.population_size:
            break
        # CMA-ES ranks the values; an infinite (diverged) loss is replaced by a large finite one.
        finite = [v for v in f if math.isfinite(v)]
        worst = max(finite) + 10 * (abs(max(finite)) + 1) if finite else 1e30
        opt.tell([(z, v if math.isfinite(v) else worst) for z, v in zip(zs, f)])
        if on_generation is not None and on_generation(list(map(float, f))):
            break
        if opt.should_stop():
            # Converged to round-off: restart around the best point with the initial step size.
            restarts += 1
            space, opt = start(best_x, restarts)
    return best_x


def run_cmaes(ev: Evaluator, init: torch.Tensor, cfg: CMAESConfig, seed: int, info: dict) -> None:
    """The ``cmaes`` method."""
    ev.phase = "cmaes"
    cmaes_search(ev, init, cfg, seed)
