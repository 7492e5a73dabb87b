"""Learning-rate schedules: linear decay (the default), cosine, constant, refined; warm-up.

Defazio et al. ("When, Why and How Much? Adaptive Learning Rate Scheduling by
Refinement", 2023) show that linear decay, η_t = η (1 − t/T), matches or beats the
usual defaults including cosine, and derive a *refined* schedule from the gradient
norms ‖g_t‖ observed in a previous run of the same problem:

    SGD-type:   w_t = ĝ_t⁻² Σ_{p>t} ĝ_p⁻²,           ĝ = median-filtered ‖g‖₂,
    Adam-type:  w_t = ĝ_t⁻¹ Σ_{p>t} ĝ_p⁻¹,           ĝ = median-filtered ‖g‖₁,

normalised to max w = 1. Refined schedules warm up and anneal on their own where the
gradient norms say so. Written from the paper.

Every schedule here is a multiplier of the peak learning rate, used through
``torch.optim.lr_scheduler.LambdaLR``::

    sched = make_scheduler(opt, "linear", total_steps=10_000, warmup_steps=500)
    ...; opt.step(); sched.step()

    w = refined_schedule(previous_grad_norms, form="adam")      # from a first run
    sched = make_scheduler(opt, "refined", total_steps=10_000, refined=w)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError

__all__ = ["SCHEDULES", "lr_multiplier", "make_scheduler", "refined_form", "refined_schedule"]

SCHEDULES = ("constant", "linear", "cosine", "refined")
# Optimizers whose update is the raw gradient scaled by lr: the ℓ2² form of refinement applies.
_SGD_LIKE = frozenset({"sgd", "asgd", "mfac", "sgdw", "sgdp", "nesterov"})


def refined_form(optimizer: str) -> str:
    """``"sgd"`` for SGD-like optimizers (ℓ2 form), ``"adam"`` for coordinate-wise adaptive ones (ℓ1 form)."""
    return "sgd" if optimizer.lower().split(".")[-1] in _SGD_LIKE else "adam"


def refined_schedule(
    grad_norms: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    total_steps: int | None = None,
    form: str = "adam",
    smoothing: float = 0.1,
) -> np.ndarray:
    """Refined learning-rate multipliers from a previous run's gradient norms.

    Args:
        grad_norms: One gradient norm per optimizer step of the previous run (ℓ1 norms
            for ``form="adam"``, ℓ2 norms for ``form="sgd"``), all finite and > 0.
        total_steps: Length of the schedule to return (the trace is resampled linearly);
            default: the trace's length.
        form: ``"sgd"`` (power 2) or ``"adam"`` (power 1).
        smoothing: Median-filter width as a fraction of the trace length (the paper
            uses a window of 10% of training).

    Returns:
        Multipliers in [0, 1], shape (total_steps,), with maximum 1 and last value 0.
    """
    from scipy.ndimage import median_filter

    g = np.asarray(torch.as_tensor(grad_norms).detach().cpu(), dtype=np.float64).reshape(-1)
    if g.size < 2:
        raise ConfigError("grad_norms", f"{g.size} values", "a trace of at least 2 gradient norms")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        bad = int(np.flatnonzero(~np.isfinite(g) | (g <= 0))[0])
        raise ConfigError(f"grad_norms[{bad}]", float(g[bad]), "finite gradient norms > 0")
    check_choice("form", form, ("sgd", "adam"))
    check_range("smoothing", smoothing, 0.0, 1.0)
    if total_steps is not None:
        check_int("total_steps", total_steps, 2)
    width = max(1, round(smoothing * g.size))
    gh = median_filter(g, size=width, mode="nearest")
    power = 2.0 if form == "sgd" else 1.0
    inv = gh ** (-power)
    tail = np.concatenate([np.cumsum(inv[::-1])[::-1][1:], [0.0]])  # Σ_{p>t} ĝ_p^-power
    w = inv * tail
    w = w / w.max()
    if total_steps is not None and total_steps != w.size:
        src = np.linspace(0.0, 1.0, w.size)
        w = np.interp(np.linspace(0.0, 1.0, total_steps), src, w)
        w = w / w.max()
    return w


def lr_multiplier(
    schedule: str,
    step: int,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
    refined: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based).

    Warm-up rises linearly, (step + 1) / warmup_steps, then the schedule runs over the
    remaining ``total_steps − warmup_steps`` steps: constant 1; linear from 1 to
    `final_lr_fraction`; cosine likewise; refined follows the given multipliers.
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    f = final_lr_fraction
    if schedule == "linear":
        return f + (1.0 - f) * (1.0 - progress)
    if schedule == "cosine":
        return f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "refined":
        if refined is None:
            raise ConfigError("refined", None, "multipliers from refined_schedule() for schedule='refined'")
        w = refined
        # refined_schedule(total_steps=...) returns one multiplier per post-warm-up step.
        i = min(len(w) - 1, max(0, round((step - warmup_steps) * (len(w) - 1) / max(1, span - 1))))
        return max(f, float(w[i]))
    raise ConfigError("schedule", schedule, "one of " + ", ".join(map(repr, SCHEDULES)))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
    refined: Sequence[float] | np.ndarray | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following `lr_multiplier`; call ``.step()`` after every optimizer step.

    Raises:
        ConfigError: unknown schedule, ``total_steps < 1``, negative warm-up, a final
            fraction outside [0, 1], or ``"refined"`` without multipliers.
    """
    check_choice("schedule", schedule, SCHEDULES)
    check_int("total_steps", total_steps, 1)
    check_int("warmup_steps", warmup_steps, 0)
    check_range("final_lr_fraction", final_lr_fraction, 0.0, 1.0)
    if schedule == "refined":
        if refined is None or len(refined) < 1:
            raise ConfigError("refined", refined, "multipliers from refined_schedule() for schedule='refined'")
        refined = np.asarray(refined, dtype=np.float64)
    fn: Callable[[int], float] = lambda step: lr_multiplier(  # noqa: E731
        schedule, step, total_steps, warmup_steps=warmup_steps, final_lr_fraction=final_lr_fraction, refined=refined
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
