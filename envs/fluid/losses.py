"""Building blocks of the task losses (torch, differentiable).

FluidLab sums its per-particle terms over particles; physim averages them (over a body, or
over the goal particles), so that a loss means the same at both quality presets, whose
particle counts differ by 8×. The per-step loss of every task is a sum of such terms; the
episode loss `rollout_loss` is the sum over control steps, and the gym reward is the
negated per-step loss (FluidLab's rewards are affine in the step loss, c·(b − ℓ)).
"""

from __future__ import annotations

import torch

__all__ = ["goal_matching", "mean_abs_distance", "mean_pairwise_l1"]


def goal_matching(ctx, t: int, x: torch.Tensor) -> torch.Tensor:
    """FluidLab's shape-matching loss: particles matched by id to the goal trajectory.

    Mean over the goal bodies' particles of ‖x − x_goal(t)‖² [m²], counting particles in
    play (released emitted particles) only; the mean divides by the total count, so the
    loss grows smoothly while a jet fills the scene.
    """
    ids = ctx.goal_ids
    diff = x.index_select(0, ids) - ctx.goal_at(t).to(x.dtype)
    used = ctx.used(t).index_select(0, ids).to(x.dtype)
    return (used * (diff * diff).sum(-1)).sum() / ids.numel()


def mean_abs_distance(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over particles of the L1 distance ‖x − target‖₁ [m] (target broadcasts)."""
    return (x - target).abs().sum(-1).mean()


def mean_pairwise_l1(x: torch.Tensor) -> torch.Tensor:
    """Mean over all ordered pairs (i, j) of ‖x_i − x_j‖₁ [m], exactly, in O(n log n).

    FluidLab's Mixing loss evaluates the double sum over (a tenth of) the milk particles,
    O(n²). Per axis, with the coordinates sorted, Σ_{i<j} (a_(j) − a_(i)) = Σ_k a_(k)(2k − n + 1),
    so sorting gives the same number for every particle at once; gradients flow through the
    sorted values (the permutation is piecewise constant).
    """
    n = x.shape[0]
    a = torch.sort(x, dim=0).values
    k = torch.arange(n, device=x.device, dtype=x.dtype).unsqueeze(1)
    return 2.0 * (a * (2.0 * k - n + 1.0)).sum() / (n * n)
