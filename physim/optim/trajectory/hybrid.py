"""Method ``hybrid``: sample to find a basin, refine with gradients, switching on measured progress.

ThinShellLab's scheme couples sampling-based trajectory optimisation (CMA-ES on a coarse
action parameterisation) with gradient-based refinement (Adam on per-step actions),
because contact-rich tasks have many local optima that gradients alone do not escape,
while sampling alone is slow in the full action space. Here the coupling is automatic:

1. **sample** (CMA-ES or CEM) around the initial actions. After every generation the
   median loss of the population (its running minimum) is compared with its value
   `window` generations earlier; when the relative improvement falls below `switch_tol`
   (the population has settled into a basin and now only polishes it), or
   `max_sample_fraction` of the budget is spent, the method switches;
2. **gradient** from the best sample. When the true loss has not improved by
   `gradient_tol` (relative) over `gradient_patience` iterations, the gradient has
   converged to the bottom of its basin;
3. with budget left, **sample again** around the best point (spread `restart_sigma`
   times the first, population doubled at each restart as in IPOP-CMA-ES, at most
   `restart_fraction` of the remaining budget) to look for a better basin, then refine
   again; and so on until the budget is spent. Local polishing is the gradient's job,
   so a restart explores as widely as the first phase.

``Result.info["phases"]`` lists each phase with its start and end cost and best loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError
from physim.optim.trajectory.cem import CEMConfig, cem_search
from physim.optim.trajectory.cma_es import CMAESConfig, cmaes_search
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.gradient import GradientConfig, gradient_descent, improved

__all__ = ["HybridConfig", "run_hybrid"]


def _refine_defaults() -> GradientConfig:
    # The sampler already chose the basin: refine the full-horizon true loss directly.
    return GradientConfig(horizon_start=None, anneal_until=0.0)


@dataclass(frozen=True, kw_only=True)
class HybridConfig:
    """Settings of the ``hybrid`` method."""

    sampler: str = "cmaes"
    """Sampling method of the exploration phases: "cmaes" or "cem"."""
    cmaes: CMAESConfig = field(default_factory=CMAESConfig)
    """Settings of the sampler when it is CMA-ES."""
    cem: CEMConfig = field(default_factory=CEMConfig)
    """Settings of the sampler when it is CEM."""
    gradient: GradientConfig = field(default_factory=_refine_defaults)
    """Settings of the gradient phases (its budget-driven schedules follow each phase's own progress)."""
    max_sample_fraction: float = 0.5
    """Most of the budget the first sampling phase may use."""
    window: int = 3
    """Generations over which the sampler's progress is measured."""
    switch_tol: float = 0.02
    """Switch to gradients when the population's median loss improved by less than this (relative) over `window`."""
    gradient_patience: int = 8
    """Gradient iterations over which the gradient's progress is measured."""
    gradient_tol: float = 1e-3
    """A gradient phase ends when the true loss improved by less than this (relative) over `gradient_patience`."""
    restart_sigma: float = 1.0
    """Spread of a later sampling phase, relative to the first."""
    restart_fraction: float = 0.3
    """Most of the remaining budget a later sampling phase may use."""
    start: str = "sample"
    """First phase: "sample" (ThinShellLab's order) or "gradient" (descend while it progresses fast, then sample)."""
    probe_tol: float = 0.05
    """start="gradient": leave the first gradient phase when it improves less than this over `gradient_patience`."""

    def __post_init__(self) -> None:
        check_choice("sampler", self.sampler, ("cmaes", "cem"))
        check_range("max_sample_fraction", self.max_sample_fraction, 0.0, 1.0)
        check_int("window", self.window, 1)
        check_range("switch_tol", self.switch_tol, 0.0)
        check_int("gradient_patience", self.gradient_patience, 1)
        check_range("gradient_tol", self.gradient_tol, 0.0)
        check_range("restart_sigma", self.restart_sigma, 0.0, low_inclusive=False)
        check_range("restart_fraction", self.restart_fraction, 0.0, 1.0)
        check_choice("start", self.start, ("sample", "gradient"))
        check_range("probe_tol", self.probe_tol, 0.0)


def run_hybrid(ev: Evaluator, init: torch.Tensor, cfg: HybridConfig, seed: int, info: dict) -> None:
    """The ``hybrid`` method; see the module docstring."""
    if not ev.problem.differentiable:
        raise ConfigError("method", "hybrid", "cem, cmaes, cbo or zo: the problem is not differentiable")
    search = cmaes_search if cfg.sampler == "cmaes" else cem_search
    sampler_cfg = cfg.cmaes if cfg.sampler == "cmaes" else cfg.cem
    phases: list[dict] = info.setdefault("phases", [])

    def sample(center: torch.Tensor, first: bool) -> None:
        # Progress of the distribution, not of the luckiest sample: the running minimum of
        # the generation medians falls while the population descends into a basin and
        # stalls once it sits in one (the best sample alone stalls early by chance).
        medians: list[float] = []

        def plateaued(values: list[float]) -> bool:
            med = float(torch.tensor(values).median()) if values else math.inf
            medians.append(min(med, medians[-1]) if medians else med)
            if len(medians) <= cfg.window:
                return False
            return not improved(medians[-1], medians[-1 - cfg.window], cfg.switch_tol)

        max_cost = cfg.max_sample_fraction * ev.budget if first else cfg.restart_fraction * ev.remaining
        restart = len(phases) // 2
        search(ev, center, sampler_cfg, seed + 1009 * restart, sigma_scale=1.0 if first else cfg.restart_sigma,
               population_scale=2**restart, max_cost=max_cost, on_generation=plateaued)

    def stalled(tol: float):
        def stop(true_losses: list[float]) -> bool:
            p = cfg.gradient_patience
            if len(true_losses) <= p:
                return False
            return not improved(min(true_losses[-p:]), min(true_losses[:-p]), tol)

        return stop

    def refine(x: torch.Tensor, tol: float) -> None:
        g_start = ev.cost_used
        ev.phase = "gradient"
        phase_budget = ev.remaining
        gradient_descent(ev, x, cfg.gradient,
                         budget_fraction=lambda g0=g_start, b=phase_budget: min(1.0, (ev.cost_used - g0) / b),
                         stop=stalled(tol), info=info)
        phases.append({"phase": "gradient", "start_cost": g_start, "end_cost": ev.cost_used,
                       "best_loss": ev.best_loss})

    if cfg.start == "gradient":
        refine(init, cfg.probe_tol)
    first = True
    while True:
        start = ev.cost_used
        center = init if ev.best_actions is None else ev.best_actions
        ev.phase = "sample"
        sample(center, first)
        phases.append({"phase": "sample", "start_cost": start, "end_cost": ev.cost_used, "best_loss": ev.best_loss})
        first = False
        if not ev.can_afford("gradient"):
            break
        refine(ev.best_actions, cfg.gradient_tol)
        if ev.cost_used == start or ev.affordable("forward") < 2:
            break
    if not math.isfinite(ev.best_loss):
        info["note"] = "no finite loss was found"
