"""Toy problems with known minima, for tests and sanity benchmarks of the optimisers.

Each returns a differentiable `TorchLossProblem` (float64) together with its initial
actions; every loss is vectorised, so populations are evaluated in one torch call
(still charged one call per member).

- `quadratic`: smooth, ill-conditioned bowl; minimum 0.
- `rosenbrock`: smooth, curved valley; minimum 0 at (1, ..., 1).
- `abs_loss`: non-smooth (a kink at the minimum); minimum 0.
- `staircase`: piecewise constant (zero gradient almost everywhere); minimum 0. With
  ``anneal = w`` it adds ``w · Σ|x − c|``, a shaping term that annealing removes.
- `two_basin`: two basins, a global one (minimum 0) and a local one (minimum `depth`);
  the start lies in the local one, so gradients alone stay there.
- `tracking`: actions are velocities over T steps; the loss is the mean squared distance
  of the integrated path to a goal curve, a per-step sum that supports ``horizon``.
"""

from __future__ import annotations

import math

import torch

from physim.config import check_int, check_positive
from physim.optim.trajectory.problem import TorchLossProblem

__all__ = ["abs_loss", "quadratic", "rosenbrock", "staircase", "tracking", "two_basin", "two_basin_global"]

_F64 = torch.float64


def _centre(dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(dim, generator=gen, dtype=_F64)


def _problem(fn, dim: int, name: str, **kwargs) -> TorchLossProblem:
    return TorchLossProblem(fn, (dim,), batch_loss_fn=fn, name=name, **kwargs)


def quadratic(dim: int = 10, seed: int = 0) -> tuple[TorchLossProblem, torch.Tensor]:
    """Σ s_i (x_i − c_i)² with scales s_i from 0.3 to 3 (condition number 10); minimum 0 at c."""
    check_int("dim", dim, 1)
    c = _centre(dim, seed)
    s = torch.logspace(math.log10(0.3), math.log10(3.0), dim, dtype=_F64)

    def f(x: torch.Tensor) -> torch.Tensor:
        return (s * (x - c) ** 2).sum(-1)

    return _problem(f, dim, "quadratic"), torch.zeros(dim, dtype=_F64)


def rosenbrock(dim: int = 6) -> tuple[TorchLossProblem, torch.Tensor]:
    """Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²; minimum 0 at (1, ..., 1); starts at 0."""
    check_int("dim", dim, 2)

    def f(x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., :-1], x[..., 1:]
        return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum(-1)

    return _problem(f, dim, "rosenbrock"), torch.zeros(dim, dtype=_F64)


def abs_loss(dim: int = 10, seed: int = 0) -> tuple[TorchLossProblem, torch.Tensor]:
    """Σ |x_i − c_i|: non-smooth at the minimum 0."""
    check_int("dim", dim, 1)
    c = _centre(dim, seed)

    def f(x: torch.Tensor) -> torch.Tensor:
        return (x - c).abs().sum(-1)

    return _problem(f, dim, "abs"), torch.zeros(dim, dtype=_F64)


def staircase(dim: int = 10, seed: int = 0, width: float = 0.25) -> tuple[TorchLossProblem, torch.Tensor]:
    """Σ width · ⌊|x_i − c_i| / width⌋ (+ anneal · Σ|x_i − c_i|); minimum 0 near c; zero gradient a.e."""
    check_int("dim", dim, 1)
    check_positive("width", width)
    c = _centre(dim, seed) * 2

    def f(x: torch.Tensor, anneal: float = 0.0) -> torch.Tensor:
        d = (x - c).abs()
        stairs = (width * torch.floor(d / width)).sum(-1)
        return stairs + anneal * d.sum(-1) if anneal else stairs

    return _problem(f, dim, "staircase"), torch.zeros(dim, dtype=_F64)


def two_basin(dim: int = 2, separation: float = 2.0, depth: float = 0.5, width: float = 2.0,
              temperature: float = 0.1) -> tuple[TorchLossProblem, torch.Tensor]:
    """Two quadratic basins joined by a smooth minimum: a broad global one at a, a narrow local one at b.

    f(x) = −τ log(exp(−|x − a|²/(w² τ)) + exp(−(|x − b|² + depth)/τ)): ≈ |x − a|²/w² near a
    (minimum ≈ 0) and ≈ |x − b|² + depth near b (minimum ≈ depth), with
    |a − b| = `separation` along a fixed random direction and w = `width`. The start is
    b + 0.1 (in the local basin): gradient descent converges to b, sampling with a spread
    comparable to the separation finds a. `two_basin_global(problem, x)` tells which
    basin x is in.
    """
    check_int("dim", dim, 1)
    check_positive("separation", separation)
    check_positive("depth", depth)
    check_positive("width", width)
    check_positive("temperature", temperature)
    u = _centre(dim, 12345)
    u = u / u.norm()
    a, b = -0.5 * separation * u, 0.5 * separation * u
    tau = temperature

    def f(x: torch.Tensor) -> torch.Tensor:
        da = ((x - a) ** 2).sum(-1) / width**2
        db = ((x - b) ** 2).sum(-1) + depth
        return -tau * torch.logsumexp(torch.stack([-da / tau, -db / tau]), dim=0)

    problem = _problem(f, dim, "two_basin")
    problem.basins = (a, b, width, depth)
    return problem, b + 0.1


def two_basin_global(problem: TorchLossProblem, x: torch.Tensor) -> bool:
    """Whether `x` lies in the global basin of a `two_basin` problem (closer to a, depth counted)."""
    a, b, width, depth = problem.basins
    return float(((x - a) ** 2).sum()) / width**2 < float(((x - b) ** 2).sum()) + depth


def tracking(steps: int = 30, dim: int = 2, dt: float = 0.1) -> tuple[TorchLossProblem, torch.Tensor]:
    """Velocities (steps, dim) → path p_t = Σ_{s≤t} a_s dt; loss = mean_t |p_t − g_t|² over the horizon.

    The goal g is a circle of radius 0.4 traversed once (speed 0.84); the loss is 0 for the exact
    velocities, which lie inside the bounds ±1.
    """
    check_int("steps", steps, 2)
    check_int("dim", dim, 2)
    check_positive("dt", dt)
    t = torch.arange(1, steps + 1, dtype=_F64) / steps
    goal = torch.zeros(steps, dim, dtype=_F64)
    goal[:, 0] = 0.4 * (torch.cos(2 * math.pi * t) - 1)
    goal[:, 1] = 0.4 * torch.sin(2 * math.pi * t)
    T = steps

    def f(a: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        h = T if horizon is None else horizon
        p = torch.cumsum(a[..., :h, :] * dt, dim=-2)
        return ((p - goal[:h]) ** 2).sum(-1).mean(-1)

    return (TorchLossProblem(f, (steps, dim), batch_loss_fn=f, name="tracking", lower=-1.0, upper=1.0),
            torch.zeros(steps, dim, dtype=_F64))
