"""Choosing the sparse particles of a reduced-order graph."""

from __future__ import annotations

import torch

from physim.config import check_choice, check_int

__all__ = ["SAMPLING", "farthest_point_sampling", "sample_particles"]

SAMPLING = ("fps", "random")


def farthest_point_sampling(x: torch.Tensor, n: int, *, start: int = 0) -> torch.Tensor:
    """Indices of `n` points of `x` picked greedily, each the farthest from those already picked.

    Args:
        x: Positions [m], shape (count, dim).
        n: Number of points to pick (at most count).
        start: Index of the first point.

    Returns:
        int64 indices, shape (n,), in the order they were picked.
    """
    count = x.shape[0]
    check_int("n", n, 1, count)
    idx = torch.empty(n, dtype=torch.long, device=x.device)
    idx[0] = start
    d2 = ((x - x[start]) ** 2).sum(dim=1)
    for i in range(1, n):
        nxt = torch.argmax(d2)
        idx[i] = nxt
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(dim=1))
    return idx


def sample_particles(x: torch.Tensor, n: int, *, method: str = "fps",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` particle indices of the cloud `x` (shape (count, dim)): farthest-point sampling from a
    random start (even coverage; the default) or a uniformly random subset; sorted ascending."""
    check_choice("method", method, SAMPLING)
    count = x.shape[0]
    n = min(n, count)
    if method == "random":
        idx = torch.randperm(count, generator=generator)[:n].to(x.device)
    else:
        start = int(torch.randint(count, (1,), generator=generator))
        idx = farthest_point_sampling(x, n, start=start)
    return torch.sort(idx).values
