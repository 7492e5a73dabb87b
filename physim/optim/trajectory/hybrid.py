"""Method ``hybrid``: gradients and sampling, each paid for while it progresses faster per simulator call.

FluidLab and ThinShellLab couple the two because neither suffices alone: sampling
escapes poor basins and copes with non-smooth losses but is slow in many dimensions;
gradients descend a basin quickly but stay in it, and are useless where the loss is flat
(a zero gradient) or non-smooth. At a fixed budget of simulator calls the question is
which of the two to pay for *now*, and `hybrid` answers it by measurement. The progress
of a phase is the fall of the best true loss per unit of budget,
``ln(best then / best now) / cost``, over a sliding window of cost (`window` of the
budget, at least `min_window_calls` gradient calls or one sampling generation); its *rate*.
A gradient phase's progress is the larger of that rate and the fall of its loss's
exponential moving average over the same window: Adam's loss at the full horizon
oscillates, so a new best can take several calls while the loss still falls.

1. **Gradient probe.** Gradients first (``start="gradient"``), with the ``gradient``
   method's expanding loss horizon (FluidLab's schedule, driven by the whole budget; each
   truncated call is charged H/T), because that is what makes a gradient cheap. Unlike
   ``gradient`` it does not anneal: an annealed surrogate changes with every call, so
   its progress cannot be measured, and non-smooth losses are what sampling is for. The
   probe ends
   - at once when the gradient is **uninformative**: exactly zero, or the loss at an
     unchanged horizon did not move after a step (a flat loss: the actions do not act on
     it yet);
   - when it **stalls**: its progress over the last window fell below `stall_ratio`
     times the best rate this phase has shown (measured on true-loss calls: full
     horizon, no annealing);
   - when it is **slower than sampling**: below the rate the last sampling phase
     achieved;
   - while the horizon is still truncated (FluidLab's schedule would hold it there for
     60 % of the budget), when it is so **slow** that at its pace the whole budget would
     lower the loss by less than `slow_gain` (then sampling is measured). The pace of a
     truncated probe is read from consecutive calls over the same horizon, accumulated
     over the phase, from 3 such pairs on.

   The last three end a phase only while the next sampling phase's share of the
   remaining budget pays for one whole generation: a sampling phase that cannot even
   measure its rate would only take the budget from the gradient.
2. **Sample** (CMA-ES or CEM on the coarse knot parameterisation) around the best point,
   with the population doubled at each later sampling phase (IPOP). It ends when its
   rate over the last window falls below the gradient's last measured rate, or below
   `stall_ratio` times its own best rate, or when it has used `max_sample_fraction` of
   the remaining budget.
3. **Refine** with gradients from the best point over the full horizon without
   annealing (the sample already fixes the whole motion; a truncated horizon would only
   re-optimise its beginning), with the stall test of 1. When the sampling found nothing
   better than the last gradient phase (which ended at the full horizon), the refinement
   can continue that phase instead (``keep_optimizer_state=True``; off by default): its
   last iterate and Adam's moments, so the gradient path is the one an uninterrupted
   descent would have taken. A fresh Adam at the best point did better on ChainThrow
   (a non-smooth loss, where the stalled Adam had stopped making progress), hence the
   default.
   Phases 2 and 3 alternate until the budget is spent; budget that can no longer pay
   for a gradient call is sampled.

With ``start="sample"`` the run begins at 2 (ThinShellLab's order, its first phase
capped at `max_sample_fraction` of the budget).

Since the switches compare rates per unit of budget, they work at any budget and any
gradient cost: on a smooth task whose gradient keeps paying off, `hybrid` makes the
calls of plain ``gradient`` (without annealing) and samples whatever budget is left once
a gradient call no longer fits; where the
gradient is flat or stalls in a basin, the budget goes to sampling.
``Result.info["phases"]`` lists each phase with its start and end cost, its best loss,
the rate it ended with and why it ended (a gradient phase also whether it ``resumed``
the previous one).
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
    min_window_calls: int = 4
    """A gradient phase's window spans at least this many of its gradient calls (a sampling phase's: one
    generation). Adam's progress is not monotone: at the full horizon it oscillates, and a new best may
    come only after several calls, so a window of two or three calls declares a stall that is none."""
    stall_ratio: float = 0.1
    """A phase stalls when its rate falls below this fraction of the best rate it has shown."""
    slow_gain: float = 4.0
    """A probe over a truncated horizon ends (to measure sampling) when, at its pace, the whole budget would
    lower the loss by less than this factor."""
    max_sample_fraction: float = 0.5
    """Most of the remaining budget one sampling phase may use (unless no gradient call fits any more)."""
    restart_sigma: float = 1.0
    """Spread of the sampling phases after the first, relative to the first."""
    keep_optimizer_state: bool = False
    """When the sampling found nothing better than the last gradient phase, the refinement continues that phase
    (its last iterate and optimizer state: Adam's moments), at the full horizon, instead of a fresh optimizer at
    the best point. Off by default: after a real stall a fresh Adam at the best point did better (ChainThrow)."""

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
    Given a smoothed loss `level` with each point, it also sets `trend`: the fall of that
    level per unit of budget over the same window (None without levels).
    """

    def __init__(self, ev: Evaluator, window: float):
        self.ev = ev
        self.window = window
        self.restart()
        self.peak = 0.0
        self.last: float | None = None
        self.trend: float | None = None

    def restart(self, level: float | None = None) -> None:
        """Measure from the present point on."""
        self.points = [(self.ev.cost_used, self.ev.best_loss, level)]

    def measure(self, level: float | None = None) -> float | None:
        self.points.append((self.ev.cost_used, self.ev.best_loss, level))
        now, best, _ = self.points[-1]
        start = self.points[0][0]
        if now - start < self.window - 1e-9:
            return None
        old = self.points[0]
        for p in self.points:
            if now - p[0] < self.window - 1e-9:
                break
            old = p
        span = max(now - old[0], 1e-12)
        rate = _log_drop(old[1], best) / span
        self.peak = max(self.peak, rate)
        self.last = rate
        self.trend = None if level is None or old[2] is None else _smoothed_drop(old[2], level) / span
        return rate


def _smoothed_drop(old: float, new: float) -> float:
    """Like `_log_drop`, but a rise counts as negative progress (a smoothed loss may go up)."""
    if old > 0 and new > 0:
        return math.log(old / new)
    return (old - new) / max(abs(old), 1e-300)


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
    # The last gradient phase's iterate and optimizer state, and the best loss when it stopped.
    carry: dict = {}
    carried_best = {"loss": math.nan}

    def population() -> int:
        """Population of the next sampling phase (IPOP: doubled at each phase after the first)."""
        pop = sampler_cfg.population
        if pop is None:  # CMA-ES's default population for the knot space
            from physim.optim.trajectory.cma_es import default_population
            from physim.optim.trajectory.space import SearchSpace

            center = init if ev.best_actions is None else ev.best_actions
            pop = default_population(SearchSpace(ev.problem, center, sampler_cfg.knots).dim)
        return pop * 2**n_sampling

    def sampling_fits() -> bool:
        """Whether the next sampling phase's share of the remaining budget pays for one whole generation.

        Ending a gradient phase for sampling that cannot complete one generation (so cannot
        even measure its rate) only wastes the budget the gradient would have used.
        """
        return cfg.max_sample_fraction * ev.remaining >= population()

    def end_phase(kind: str, start: float, rate: _Rate, reason: str, resumed: bool = False) -> None:
        if rate.last is not None or reason == "uninformative gradient":
            rates[kind] = rate.last if rate.last is not None else 0.0
        shown = rates[kind] if rates[kind] is not None and math.isfinite(rates[kind]) else None
        entry = {"phase": kind, "start_cost": start, "end_cost": ev.cost_used, "best_loss": ev.best_loss,
                 "rate": shown, "reason": reason}
        if kind == "gradient":
            entry["resumed"] = resumed
        phases.append(entry)

    def descend(x: torch.Tensor, probe: bool) -> None:
        start = ev.cost_used
        ev.phase = "gradient"
        window = max(cfg.window * ev.budget, cfg.min_window_calls * ev.cost("gradient"))
        rate = _Rate(ev, window)
        smoothing = 2.0 / (cfg.min_window_calls + 1)
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
            # Adam's loss at the full horizon oscillates: a new best may take several calls while
            # the loss itself still falls. So progress is the faster of the best loss's fall and
            # the fall of the loss's exponential moving average (span `min_window_calls` calls).
            level = state.get("level")
            level = step.value if level is None else level + smoothing * (step.value - level)
            state["level"] = level
            if state.pop("surrogate", False):
                # The first true call after surrogate ones: progress is measured from here
                # (the drop from the start to this call was bought over the surrogate calls).
                rate.restart(level)
                return False
            r = rate.measure(level)
            if r is None:
                return False
            progress = r if rate.trend is None else max(r, rate.trend)
            if progress <= cfg.stall_ratio * rate.peak and sampling_fits():
                state["reason"] = "stalled"
                return True
            return slower(progress, absolute=False)

        def slower(r: float, absolute: bool) -> bool:
            if not sampling_fits():
                return False
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
        # Continue the last gradient phase where it stopped if nothing better was found since and it
        # stopped at the full horizon (what a refinement optimises); else a fresh optimizer at `x`.
        resume = (cfg.keep_optimizer_state and not probe and carry.get("full", False)
                  and ev.best_loss == carried_best["loss"])
        if not resume:
            carry.clear()
        else:
            state["resumed"] = True
        gradient_descent(ev, x, cfg.gradient if probe else cfg.refine, budget_fraction=fraction, monitor=monitor,
                         info=info, carry=carry)
        carried_best["loss"] = ev.best_loss
        end_phase("gradient", start, rate, state["reason"], resumed=state.get("resumed", False))

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
        window = max(cfg.window * ev.budget, population())
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
