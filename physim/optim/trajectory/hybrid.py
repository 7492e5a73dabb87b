"""Method ``hybrid``: gradients and sampling, each paid for while it progresses faster per simulator call.

FluidLab and ThinShellLab couple the two because neither suffices alone: sampling
escapes poor basins and copes with non-smooth losses but is slow in many dimensions;
gradients descend a basin quickly but stay in it, and are useless where the loss is flat
(a zero gradient) or non-smooth. At a fixed budget of simulator calls the question is
which of the two to pay for *now*, and `hybrid` answers it by measurement. The progress
of a phase is the fall of the best true loss per unit of budget,
``ln(best then / best now) / cost``, over a sliding window of cost (`window` of the
budget, at least `min_window_calls` calls of the phase's own kind); its *rate*.

1. **Gradient probe.** Gradients first (``start="gradient"``), with the ``gradient``
   method's expanding loss horizon (FluidLab's schedule, driven by the whole budget; each
   truncated call is charged H/T), because that is what makes a gradient cheap. Unlike
   ``gradient`` it does not anneal: an annealed surrogate changes with every call, so
   its progress cannot be measured, and non-smooth losses are what sampling is for. The
   probe ends
   - at once when the gradient is **uninformative**: exactly zero, or the loss at an
     unchanged horizon did not move after a step (a flat loss: the actions do not act on
     it yet);
   - when it **stalls**: its rate over the last window fell below `stall_ratio` times
     the best rate this phase has shown (measured on true-loss calls: full horizon, no
     annealing);
   - when it is **slower than sampling**: below the rate the last sampling phase
     achieved;
   - while the horizon is still truncated (FluidLab's schedule would hold it there for
     60 % of the budget), when it is so **slow** that at its pace the whole budget would
     lower the loss by less than `slow_gain` (then sampling is measured). The pace of a
     truncated probe is read from consecutive calls over the same horizon, accumulated
     over the phase, from 3 such pairs on.
2. **Sample** (CMA-ES or CEM on the coarse knot parameterisation) around the best point,
   with the population doubled at each later sampling phase (IPOP). It ends when its
   rate over the last window falls below the gradient's last measured rate, or below
   `stall_ratio` times its own best rate, or when it has used `max_sample_fraction` of
   the remaining budget.
3. **Refine** with gradients from the best point over the full horizon without
   annealing (the sample already fixes the whole motion; a truncated horizon would only
   re-optimise its beginning), with the stall test of 1. Phases 2 and 3 alternate until
   the budget is spent; budget that can no longer pay for a gradient call is sampled.

With ``start="sample"`` the run begins at 2 (ThinShellLab's order, its first phase
capped at `max_sample_fraction` of the budget).

Since the switches compare rates per unit of budget, they work at any budget and any
gradient cost: on a smooth task whose gradient keeps paying off, `hybrid` makes the
calls of plain ``gradient`` (without annealing) and samples whatever budget is left once
a gradient call no longer fits; where the
gradient is flat or stalls in a basin, the budget goes to sampling.
``Result.info["phases"]`` lists each phase with its start and end cost, its best loss,
the rate it ended with and why it ended.
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
from physim.optim.trajectory.gradient import GradientConfig, GradientStep, gradient_descent

__all__ = ["HybridConfig", "run_hybrid"]


def _probe_defaults() -> GradientConfig:
    # `gradient`'s expanding horizon (what makes its first calls cheap), but no annealing:
    # an annealed surrogate changes with every call, so its progress cannot be measured,
    # and non-smooth losses are what the sampling phases are for.
    return GradientConfig(anneal_until=0.0)


def _refine_defaults() -> GradientConfig:
    # A sample fixes the whole motion: refine the full-horizon true loss directly.
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
    gradient: GradientConfig = field(default_factory=_probe_defaults)
    """Settings of the first gradient phase (the probe; its schedules follow the whole budget, as in `gradient`)."""
    refine: GradientConfig = field(default_factory=_refine_defaults)
    """Settings of the gradient phases after a sampling phase."""
    start: str = "gradient"
    """First phase: "gradient" (a probe with the expanding horizon) or "sample" (ThinShellLab's order)."""
    window: float = 0.1
    """Cost window over which a phase's rate is measured, as a fraction of the budget."""
    min_window_calls: int = 2
    """The window spans at least this many full-horizon gradient calls (gradient) or one generation (sampling)."""
    stall_ratio: float = 0.1
    """A phase stalls when its rate falls below this fraction of the best rate it has shown."""
    slow_gain: float = 4.0
    """A probe over a truncated horizon ends (to measure sampling) when, at its pace, the whole budget would
    lower the loss by less than this factor."""
    max_sample_fraction: float = 0.5
    """Most of the remaining budget one sampling phase may use (unless no gradient call fits any more)."""
    restart_sigma: float = 1.0
    """Spread of the sampling phases after the first, relative to the first."""

    def __post_init__(self) -> None:
        check_choice("sampler", self.sampler, ("cmaes", "cem"))
        check_choice("start", self.start, ("sample", "gradient"))
        check_range("window", self.window, 0.0, 1.0)
        check_int("min_window_calls", self.min_window_calls, 1)
        check_range("stall_ratio", self.stall_ratio, 0.0, 1.0)
        check_range("slow_gain", self.slow_gain, 1.0)
        check_range("max_sample_fraction", self.max_sample_fraction, 0.0, 1.0, low_inclusive=False)
        check_range("restart_sigma", self.restart_sigma, 0.0, low_inclusive=False)


def _log_drop(old: float, new: float) -> float:
    """Progress from loss `old` to `new`: ln(old/new) for positive losses, else the relative fall."""
    if not math.isfinite(old):
        return math.inf if math.isfinite(new) else 0.0
    if old > 0 and new > 0:
        return math.log(old / new)
    return max(0.0, (old - new) / max(abs(old), 1e-300))


class _Rate:
    """The best true loss of the run against the budget used since a phase began.

    `measure()` records the present point and returns the rate (progress per unit of
    budget) over the last `window` of cost, or None while the phase is younger than that.
    """

    def __init__(self, ev: Evaluator, window: float):
        self.ev = ev
        self.window = window
        self.points = [(ev.cost_used, ev.best_loss)]
        self.peak = 0.0
        self.last: float | None = None

    def record(self) -> None:
        self.points.append((self.ev.cost_used, self.ev.best_loss))

    def measure(self) -> float | None:
        self.record()
        now, best = self.points[-1]
        start = self.points[0][0]
        if now - start < self.window - 1e-9:
            return None
        old = self.points[0]
        for p in self.points:
            if now - p[0] < self.window - 1e-9:
                break
            old = p
        rate = _log_drop(old[1], best) / max(now - old[0], 1e-12)
        self.peak = max(self.peak, rate)
        self.last = rate
        return rate


def run_hybrid(ev: Evaluator, init: torch.Tensor, cfg: HybridConfig, seed: int, info: dict) -> None:
    """The ``hybrid`` method; see the module docstring."""
    if not ev.problem.differentiable:
        raise ConfigError("method", "hybrid", "cem, cmaes, cbo or zo: the problem is not differentiable")
    search = cmaes_search if cfg.sampler == "cmaes" else cem_search
    sampler_cfg = cfg.cmaes if cfg.sampler == "cmaes" else cfg.cem
    phases: list[dict] = info.setdefault("phases", [])
    # Last measured rate of each kind of phase; None until one has been measured.
    rates: dict[str, float | None] = {"gradient": None, "sample": None}
    n_sampling = 0

    def end_phase(kind: str, start: float, rate: _Rate, reason: str) -> None:
        if rate.last is not None or reason == "uninformative gradient":
            rates[kind] = rate.last if rate.last is not None else 0.0
        shown = rates[kind] if rates[kind] is not None and math.isfinite(rates[kind]) else None
        phases.append({"phase": kind, "start_cost": start, "end_cost": ev.cost_used, "best_loss": ev.best_loss,
                       "rate": shown, "reason": reason})

    def descend(x: torch.Tensor, probe: bool) -> None:
        start = ev.cost_used
        ev.phase = "gradient"
        window = max(cfg.window * ev.budget, cfg.min_window_calls * ev.cost("gradient"))
        rate = _Rate(ev, window)
        state = {"reason": "budget", "last": None, "pairs": 0, "pair_log": 0.0, "pair_cost": 0.0}

        def monitor(step: GradientStep) -> bool:
            key = (step.horizon, step.anneal)
            prev = state["last"]
            flat = prev is not None and prev[0] == key and prev[1] == step.value
            state["last"] = (key, step.value)
            if not bool(step.grad.any()) or flat:
                state["reason"] = "uninformative gradient"
                return True
            if step.horizon is not None or step.anneal:
                # A surrogate call: the true loss is not measured, so the pace is read from
                # consecutive calls of the same surrogate (the progress per unit of budget,
                # accumulated over the phase), and there is no stall test.
                state["surrogate"] = True
                if prev is not None and prev[0] == key and prev[1] > 0 and step.value > 0:
                    state["pairs"] += 1
                    state["pair_log"] += math.log(prev[1] / step.value)
                    state["pair_cost"] += ev.cost("gradient", step.horizon)
                if state["pairs"] >= 3:
                    return slower(state["pair_log"] / state["pair_cost"], absolute=True)
                return False
            if state.pop("surrogate", False):
                # The first true call after surrogate ones: progress is measured from here
                # (the drop from the start to this call was bought over the surrogate calls).
                rate.points = [(ev.cost_used, ev.best_loss)]
                return False
            r = rate.measure()
            if r is None:
                return False
            if r <= cfg.stall_ratio * rate.peak:
                state["reason"] = "stalled"
                return True
            return slower(r, absolute=False)

        def slower(r: float, absolute: bool) -> bool:
            if rates["sample"] is not None:
                if r < rates["sample"]:
                    state["reason"] = "slower than sampling"
                    return True
            elif absolute and r * ev.budget < math.log(cfg.slow_gain):
                # Sampling has not been measured yet and at this pace the whole budget would
                # not lower the loss by `slow_gain`: measure sampling.
                state["reason"] = "slow"
                return True
            return False

        # The probe's schedules follow the whole budget, as in `gradient`; a refinement's its own share.
        share = ev.remaining
        fraction = None if probe else (lambda: min(1.0, (ev.cost_used - start) / share))
        gradient_descent(ev, x, cfg.gradient if probe else cfg.refine, budget_fraction=fraction, monitor=monitor,
                         info=info)
        end_phase("gradient", start, rate, state["reason"])

    def sample(center: torch.Tensor) -> None:
        nonlocal n_sampling
        start = ev.cost_used
        ev.phase = "sample"
        gradient_fits = ev.can_afford("gradient")
        if n_sampling == 0 and cfg.start == "sample":
            max_cost = cfg.max_sample_fraction * ev.budget
        elif gradient_fits:
            max_cost = cfg.max_sample_fraction * ev.remaining
        else:
            max_cost = ev.remaining  # no gradient call fits any more: sampling is all that is left
        scale = 2**n_sampling
        pop = sampler_cfg.population
        if pop is None:  # CMA-ES's default population for the knot space
            from physim.optim.trajectory.space import SearchSpace

            pop = 4 + math.floor(3 * math.log(max(SearchSpace(ev.problem, center, sampler_cfg.knots).dim, 1)))
        window = max(cfg.window * ev.budget, pop * scale)
        rate = _Rate(ev, window)
        state = {"reason": "budget"}

        def on_generation(values: list[float]) -> bool:
            r = rate.measure()
            if r is None or not gradient_fits:
                return False
            if r <= cfg.stall_ratio * rate.peak:
                state["reason"] = "stalled"
                return True
            if rates["gradient"] is not None and r < rates["gradient"]:
                state["reason"] = "slower than gradient"
                return True
            return False

        search(ev, center, sampler_cfg, seed + 1009 * n_sampling,
               sigma_scale=1.0 if n_sampling == 0 else cfg.restart_sigma,
               population_scale=scale, max_cost=max_cost, on_generation=on_generation)
        if ev.cost_used - start >= max_cost - 1 and state["reason"] == "budget" and ev.remaining >= 1:
            state["reason"] = "sampling share spent"
        n_sampling += 1
        end_phase("sample", start, rate, state["reason"])

    kind = cfg.start
    probe = cfg.start == "gradient"
    idle = 0  # consecutive phases that could not spend anything
    while ev.affordable("forward") >= 1 and idle < 2:
        before = ev.cost_used
        center = init if ev.best_actions is None else ev.best_actions
        if kind == "gradient" and ev.can_afford("gradient"):
            descend(center, probe=probe)
            probe = False
            kind = "sample"
        else:
            sample(center)
            kind = "gradient"
        idle = idle + 1 if ev.cost_used == before else 0
    if not math.isfinite(ev.best_loss):
        info["note"] = "no finite loss was found"
