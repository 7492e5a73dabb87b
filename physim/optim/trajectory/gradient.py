"""Method ``gradient``: a first-order optimiser on the action sequence, with FluidLab's schemes.

- **Expanding loss horizon** (FluidLab's "temporally expanding optimization region"):
  the loss covers the first H of T steps; H grows by `horizon_step` once the loss at the
  current H has not improved for `horizon_patience` iterations, and a floor that rises
  linearly to T at `horizon_full_at` of the budget guarantees the end of the run
  optimises the real task. Later actions get no gradient while outside the horizon, so
  the optimiser first learns the beginning of the motion, which the rest depends on.
- **Loss annealing**: for problems that support it, the smoothing/shaping weight
  ``anneal`` falls linearly from 1 to 0 over the first `anneal_until` of the budget.

Actions are projected onto the problem's bounds after every step. A diverged
simulation sends the iterate back to the best actions and halves the learning rate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from physim.config import check_int, check_range
from physim.errors import ConfigError
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.space import mean_range

__all__ = ["GradientConfig", "GradientStep", "gradient_descent", "make_optimizer", "run_gradient"]


@dataclass(frozen=True)
class GradientStep:
    """One iteration of `gradient_descent`, as seen by its `monitor`.

    Attributes:
        value: Loss of the call (a surrogate when `horizon` or `anneal` is set).
        horizon: Loss horizon of the call (None: full).
        anneal: Annealing weight of the call.
        grad: Gradient of the call, shape ``action_shape`` (before clipping).
        actions: The iterate after the step, shape ``action_shape``.
    """

    value: float
    horizon: int | None
    anneal: float
    grad: torch.Tensor
    actions: torch.Tensor


@dataclass(frozen=True, kw_only=True)
class GradientConfig:
    """Settings of the ``gradient`` method."""

    optimizer: str = "adam"
    """Optimizer name: physim.optim's registry when available, else a torch.optim class."""
    lr: float | None = None
    """Learning rate [action units per step]; None: 0.02 × the mean bounded action range, or 0.05."""
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of the optimizer."""
    horizon_start: float | None = 0.25
    """Initial loss horizon as a fraction of T (problems with a time axis only); None: full horizon."""
    horizon_step: float = 0.1
    """Fraction of T added to the horizon after a plateau."""
    horizon_patience: int = 5
    """Iterations without improvement at one horizon that count as a plateau (FluidLab: 5)."""
    plateau_tol: float = 1e-3
    """Relative improvement below which an iteration does not count as progress."""
    horizon_full_at: float = 0.6
    """Fraction of the budget by which the horizon is forced to T."""
    anneal_until: float = 0.5
    """Fraction of the budget over which the annealing weight falls from 1 to 0 (0: no annealing)."""
    grad_clip: float | None = None
    """Clip the gradient to this norm; None: no clipping."""

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, str) or not self.optimizer:
            raise ConfigError("optimizer", self.optimizer, "an optimizer name such as 'adam'")
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, low_inclusive=False)
        if self.horizon_start is not None:
            check_range("horizon_start", self.horizon_start, 0.0, 1.0, low_inclusive=False)
        check_range("horizon_step", self.horizon_step, 0.0, 1.0, low_inclusive=False)
        check_int("horizon_patience", self.horizon_patience, 1)
        check_range("plateau_tol", self.plateau_tol, 0.0)
        check_range("horizon_full_at", self.horizon_full_at, 0.0, 1.0)
        check_range("anneal_until", self.anneal_until, 0.0, 1.0)
        if self.grad_clip is not None:
            check_range("grad_clip", self.grad_clip, 0.0, low_inclusive=False)


def make_optimizer(name: str, params: list[torch.Tensor], lr: float, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    """An optimizer by name: physim.optim's registry when present, else torch.optim (case-insensitive)."""
    try:
        from physim.optim.registry import make_optimizer as registry_make
    except ImportError:
        registry_make = None
    if registry_make is not None:
        return registry_make(name, params, lr=lr, **kwargs)
    classes = {k.lower(): v for k, v in vars(torch.optim).items()
               if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer}
    cls = classes.get(name.lower())
    if cls is None:
        raise ConfigError("optimizer", name, "one of " + ", ".join(sorted(classes)))
    return cls(params, lr=lr, **kwargs)


def improved(new: float, old: float, tol: float) -> bool:
    """Whether `new` is lower than `old` by more than `tol` relative to |old| (any sign; old may be inf)."""
    return not math.isfinite(old) or new < old - tol * abs(old)


def default_lr(problem) -> float:
    """0.02 × the mean bounded action range, or 0.05 without bounds."""
    rng = mean_range(problem)
    return 0.05 if rng is None else 0.02 * rng


def gradient_descent(
    ev: Evaluator,
    x0: torch.Tensor,
    cfg: GradientConfig,
    *,
    budget_fraction: Callable[[], float] | None = None,
    stop: Callable[[list[float]], bool] | None = None,
    monitor: Callable[[GradientStep], bool] | None = None,
    info: dict | None = None,
    carry: dict | None = None,
) -> torch.Tensor:
    """Run the gradient method from `x0` until the budget ends or ``stop(true_losses)`` says so.

    Args:
        ev: The evaluator (charges, history, best).
        x0: Initial actions.
        cfg: Settings.
        budget_fraction: Progress in [0, 1] that drives the horizon and annealing schedules
            (default: the evaluator's budget fraction).
        stop: Called after each iteration with the true losses of this run so far.
        monitor: Called after each iteration with a `GradientStep`; True stops the run.
        info: Dict to which the horizon schedule is appended.
        carry: Optional dict through which a descent continues an earlier one. On return
            it holds the last iterate (``"actions"``), the optimizer's state (``"optimizer"``,
            Adam's moments and step count) and whether the last call was over the full
            horizon without annealing (``"full"``); passed in holding them, the descent
            starts from that iterate with that optimizer state instead of a fresh
            optimizer at `x0` (as if the earlier descent had never stopped).

    Returns:
        The last iterate.
    """
    problem = ev.problem
    frac = budget_fraction or (lambda: ev.fraction)
    resume = carry is not None and "actions" in carry
    start = carry["actions"] if resume else x0
    x = problem.project(start.detach().clone().to(problem.dtype))
    param = x.clone().requires_grad_(True)
    lr = cfg.lr if cfg.lr is not None else default_lr(problem)
    opt = make_optimizer(cfg.optimizer, [param], lr, dict(cfg.optimizer_kwargs))
    if resume:
        opt.load_state_dict(carry["optimizer"])
    T = problem.horizon
    use_horizon = T is not None and cfg.horizon_start is not None and T > 1
    h_start = max(1, round(cfg.horizon_start * T)) if use_horizon else T
    h_plateau = h_start
    best_here, stall = math.inf, 0
    true_losses: list[float] = []
    schedule = [] if info is None else info.setdefault("horizon_schedule", [])
    last_h = None
    while True:
        f = frac()
        anneal = max(0.0, 1.0 - f / cfg.anneal_until) if (cfg.anneal_until > 0 and problem.supports_anneal) else 0.0
        horizon = None
        if use_horizon:
            floor = h_start + (T - h_start) * min(1.0, f / cfg.horizon_full_at) if cfg.horizon_full_at > 0 else T
            h = min(T, max(h_plateau, math.floor(floor + 1e-9)))
            horizon = None if h >= T else h
        if horizon != last_h:
            schedule.append({"cost": ev.cost_used, "horizon": T if horizon is None else horizon})
            last_h, best_here, stall = horizon, math.inf, 0
        if not ev.can_afford("gradient", horizon):
            break
        if carry is not None:
            carry["full"] = horizon is None and not anneal
        value, grad = ev.loss_and_grad(param.detach(), horizon=horizon, anneal=anneal)
        if not math.isfinite(value):
            # Diverged: restart from the best point with a smaller step.
            back = ev.best_actions if ev.best_actions is not None else x0
            with torch.no_grad():
                param.copy_(back)
            for group in opt.param_groups:
                group["lr"] *= 0.5
            continue
        if horizon is None and not anneal:
            true_losses.append(value)
        if improved(value, best_here, cfg.plateau_tol):
            best_here, stall = value, 0
        else:
            stall += 1
            if use_horizon and stall >= cfg.horizon_patience and h_plateau < T:
                h_plateau = min(T, h_plateau + max(1, round(cfg.horizon_step * T)))
        raw_grad = grad
        if cfg.grad_clip is not None:
            norm = float(grad.norm())
            if norm > cfg.grad_clip:
                grad = grad * (cfg.grad_clip / norm)
        opt.zero_grad()
        param.grad = grad.to(param)
        opt.step()
        with torch.no_grad():
            param.copy_(problem.project(param))
        if stop is not None and stop(true_losses):
            break
        if monitor is not None and monitor(GradientStep(value, horizon, anneal, raw_grad, param.detach())):
            break
    if carry is not None:
        carry["actions"], carry["optimizer"] = param.detach().clone(), copy.deepcopy(opt.state_dict())
    return param.detach()


def run_gradient(ev: Evaluator, init: torch.Tensor, cfg: GradientConfig, seed: int, info: dict) -> None:
    """The ``gradient`` method (deterministic: `seed` is unused)."""
    del seed
    if not ev.problem.differentiable:
        raise ConfigError("method", "gradient", "cem, cmaes, cbo or zo: the problem is not differentiable")
    ev.phase = "gradient"
    gradient_descent(ev, init, cfg, info=info)
