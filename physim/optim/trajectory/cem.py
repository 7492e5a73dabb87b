"""Method ``cem``: the cross-entropy method over the (optionally coarse) action space.

Each generation samples a Gaussian population around the mean, keeps the elite fraction
with the lowest losses and moves the mean and the per-coordinate spread toward the
elites' (with smoothing, and a floor on the spread so the search never collapses to a
point before the budget ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from physim.config import check_int, check_range
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.space import SearchSpace, default_sigma

__all__ = ["CEMConfig", "cem_search", "run_cem"]


@dataclass(frozen=True, kw_only=True)
class CEMConfig:
    """Settings of the ``cem`` method."""

    population: int = 16
    """Samples per generation."""
    elite_fraction: float = 0.25
    """Fraction of each generation that updates the distribution."""
    sigma: float | None = None
    """Initial spread [action units]; None: a quarter of the mean bounded range, or 1."""
    smoothing: float = 0.2
    """Weight of the previous mean and spread in each update."""
    min_sigma: float = 0.02
    """Floor on the spread, relative to the initial spread."""
    knots: int | None = 8
    """Search K knots per action component along the time axis of (T, ...) actions (None: every entry)."""

    def __post_init__(self) -> None:
        check_int("population", self.population, 2)
        check_range("elite_fraction", self.elite_fraction, 0.0, 1.0, low_inclusive=False)
        if self.sigma is not None:
            check_range("sigma", self.sigma, 0.0, low_inclusive=False)
        check_range("smoothing", self.smoothing, 0.0, 1.0, high_inclusive=False)
        check_range("min_sigma", self.min_sigma, 0.0, 1.0)
        if self.knots is not None:
            check_int("knots", self.knots, 1)


def cem_search(ev: Evaluator, center: torch.Tensor, cfg: CEMConfig, seed: int, *,
               sigma_scale: float = 1.0, population_scale: int = 1, max_cost: float | None = None,
               on_generation=None) -> torch.Tensor:
    """Run CEM around `center` until the budget (or `max_cost` of it) is spent or `on_generation` says stop.

    ``on_generation(values)`` receives each generation's losses and returns True to stop.

    Returns:
        The actions of the best sample found in this search.
    """
    problem = ev.problem
    space = SearchSpace(problem, center, cfg.knots)
    gen = torch.Generator().manual_seed(seed)
    sigma0 = (cfg.sigma if cfg.sigma is not None else default_sigma(problem)) * sigma_scale
    mean = torch.zeros(space.dim, dtype=problem.dtype)
    std = torch.full((space.dim,), sigma0, dtype=problem.dtype)
    stop_at = ev.budget if max_cost is None else min(ev.budget, ev.cost_used + max_cost)
    best_x, best_f = problem.project(center.clone()), math.inf
    while True:
        n = min(cfg.population * population_scale, math.floor(stop_at - ev.cost_used + 1e-9), ev.affordable("forward"))
        if n < 2:
            break
        z = mean + std * torch.randn(n, space.dim, generator=gen, dtype=problem.dtype)
        xs = space.to_actions(z)
        f = torch.tensor(ev.batch_loss(xs), dtype=problem.dtype)
        i = int(torch.argmin(f))
        if float(f[i]) < best_f:
            best_f, best_x = float(f[i]), xs[i].clone()
        k = max(1, math.ceil(cfg.elite_fraction * n))
        finite = torch.isfinite(f)
        if not bool(finite.any()):
            continue
        order = torch.argsort(torch.where(finite, f, torch.full_like(f, math.inf)))[:k]
        elite = z[order]
        a = cfg.smoothing
        mean = a * mean + (1 - a) * elite.mean(0)
        elite_std = elite.std(0, unbiased=False) if k > 1 else std
        std = (a * std + (1 - a) * elite_std).clamp(min=cfg.min_sigma * sigma0)
        if on_generation is not None and on_generation(list(map(float, f))):
            break
    return best_x


def run_cem(ev: Evaluator, init: torch.Tensor, cfg: CEMConfig, seed: int, info: dict) -> None:
    """The ``cem`` method."""
    ev.phase = "cem"
    cem_search(ev, init, cfg, seed)
