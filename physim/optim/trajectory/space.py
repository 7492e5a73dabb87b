"""The search space of the sampling methods: flat vectors mapped to action tensors.

Sampling in the full per-step action space is slow in high dimension; ThinShellLab's
CMA-ES therefore searches a coarse parameterisation. ``knots=K`` does the same here: for
actions with a time axis (shape (T, ...), at least 2-D, T > K) the sampler searches K
values per action component, linearly interpolated over the T steps and added to the
initial actions (a residual, so the initial actions are the centre of the search).
``knots=None``, 1-D actions, or T ≤ K search every entry.
"""

from __future__ import annotations

import math

import torch

from physim.errors import ConfigError

__all__ = ["SearchSpace", "default_sigma", "hat_basis", "mean_range"]


def hat_basis(steps: int, knots: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Linear-interpolation weights from `knots` evenly spaced knots to `steps` steps, shape (steps, knots)."""
    if knots == 1:
        return torch.ones(steps, 1, dtype=dtype)
    pos = torch.linspace(0, knots - 1, steps, dtype=dtype)
    k = torch.arange(knots, dtype=dtype)
    return (1 - (pos[:, None] - k[None, :]).abs()).clamp(min=0)


def mean_range(problem) -> float | None:
    """Mean width of the finite bounds of the actions, or None when there are none."""
    if problem.lower is not None and problem.upper is not None:
        rng = problem.upper - problem.lower
        rng = rng[torch.isfinite(rng)]
        if rng.numel():
            return float(rng.mean())
    return None


def default_sigma(problem) -> float:
    """Initial sampling spread: a quarter of the mean bounded range, or 1 without bounds."""
    rng = mean_range(problem)
    return 1.0 if rng is None else 0.25 * rng


class SearchSpace:
    """Maps flat search vectors z, shape (..., dim), to projected actions, shape (..., *action_shape).

    Args:
        problem: The `Problem` (its bounds are applied after the mapping).
        base: The centre of the search, shape `problem.action_shape`.
        knots: Number of knots along the time axis 0, or None for every entry.
    """

    def __init__(self, problem, base: torch.Tensor, knots: int | None = None):
        self.problem = problem
        self.base = base.detach().to(problem.dtype)
        shape = problem.action_shape
        if knots is not None:
            if isinstance(knots, bool) or not isinstance(knots, int) or knots < 1:
                raise ConfigError("knots", knots, "None or an integer >= 1")
            if len(shape) < 2 or knots >= shape[0]:
                knots = None
        self.knots = knots
        self.rest = shape[1:]
        self.basis = None if knots is None else hat_basis(shape[0], knots, problem.dtype)
        self.dim = math.prod(shape) if knots is None else knots * math.prod(self.rest)

    def to_actions(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.as_tensor(z, dtype=self.problem.dtype)
        lead = z.shape[:-1]
        if self.basis is None:
            delta = z.reshape(*lead, *self.problem.action_shape)
        else:
            zk = z.reshape(*lead, self.knots, -1)
            delta = torch.einsum("tk,...kr->...tr", self.basis, zk).reshape(*lead, *self.problem.action_shape)
        return self.problem.project(self.base + delta)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Box of z (only for the identity map, where it is exact): (lower, upper), each (dim,)."""
        if self.basis is not None or (self.problem.lower is None and self.problem.upper is None):
            return None
        lo = self.problem.lower if self.problem.lower is not None else torch.full_like(self.base, -math.inf)
        hi = self.problem.upper if self.problem.upper is not None else torch.full_like(self.base, math.inf)
        return (lo - self.base).reshape(-1), (hi - self.base).reshape(-1)
