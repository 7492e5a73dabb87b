"""The adaptive solver's own cost heuristics, recomputed differentiably for one step.

torchdiffeq's ``dopri5`` takes Dormand–Prince 5(4) steps and accepts a step when the
error ratio

    E = RMS( err / (atol + rtol · max(|y0|, |y1|)) ),   err = dt Σ_i e_i k_i,

is ≤ 1. Hairer's stiffness indicator for the same pair compares the last two stages,
whose arguments both sit at t0 + dt:

    ρ = ‖k7 − k6‖ / ‖g7 − g6‖ ≈ |λ_max(∂f/∂y)|,   g7 = y1, g6 = y0 + dt Σ_j a6j k_j,

and ``dt · ρ`` is what the solver's stability bound (≈ 3.3 for Dopri5) limits.
`step_heuristics` recomputes both for a recorded step (t0, y0, dt) with the solver's
own tableau, from a detached y0, so their gradients reach the dynamics' parameters
without differentiating through the solve: this is what makes the local
regularisation of Pal et al. (2023) work with any adjoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["StepHeuristics", "step_heuristics"]


def _tableau():
    # The exact coefficients the solver uses (pinned torchdiffeq<0.3), so E matches its accept test.
    from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU

    return _DORMAND_PRINCE_SHAMPINE_TABLEAU


@dataclass
class StepHeuristics:
    """One recomputed Dopri5 step.

    Attributes:
        y1: 5th-order solution at t0 + dt, shape of y0.
        error_ratio: E, the solver's scaled local error estimate (scalar tensor; ≤ 1 for
            an accepted step).
        stiffness: ρ, the stiffness (dominant eigenvalue) estimate [1/time unit].
        error: The raw embedded error estimate err, shape of y0.
    """

    y1: torch.Tensor
    error_ratio: torch.Tensor
    stiffness: torch.Tensor
    error: torch.Tensor


def step_heuristics(
    func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    t0: torch.Tensor | float,
    y0: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    rtol: float,
    atol: float,
) -> StepHeuristics:
    """Take one Dormand–Prince 5(4) step of ``dy/dt = func(t, y)`` and return its heuristics.

    Args:
        func: The dynamics ``func(t, y)``.
        t0: Start time of the step.
        y0: State at t0 (any shape; a batch is one system, as in the solver).
        dt: Step size (> 0).
        rtol, atol: The solver's tolerances (they scale E).

    Returns:
        `StepHeuristics`; differentiable with respect to `func`'s parameters and `y0`.
    """
    tab = _tableau()
    dtype, device = y0.dtype, y0.device
    t0 = torch.as_tensor(t0, dtype=dtype, device=device)
    dt = torch.as_tensor(dt, dtype=dtype, device=device)
    alpha = tab.alpha.to(dtype=dtype, device=device)
    k = [func(t0, y0)]
    args = [y0]
    for i, beta in enumerate(tab.beta):
        beta = beta.to(dtype=dtype, device=device)
        yi = y0 + dt * sum(b * kj for b, kj in zip(beta, k) if b != 0)
        args.append(yi)
        k.append(func(t0 + alpha[i] * dt, yi))
    # Dopri5 is FSAL: the 7th stage argument is the 5th-order solution.
    y1 = args[-1]
    c_err = tab.c_error.to(dtype=dtype, device=device)
    error = dt * sum(c * kj for c, kj in zip(c_err, k) if c != 0)
    tol = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    error_ratio = (error / tol).pow(2).mean().sqrt()
    num = (k[6] - k[5]).reshape(-1).norm()
    den = (args[6] - args[5]).reshape(-1).norm()
    stiffness = num / den.clamp_min(torch.finfo(dtype).tiny ** 0.5)
    return StepHeuristics(y1=y1, error_ratio=error_ratio, stiffness=stiffness, error=error)
