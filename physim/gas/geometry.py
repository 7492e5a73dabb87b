"""Torch helpers for the staggered grid: open faces, divergence, cell-centered velocity, solid masks.

They are independent of the Taichi kernels (tests use them to check the kernels) and
differentiable. Face velocities follow `GasState`: component d of ``v[I]`` sits on the
face on the low side of cell I along axis d; the face on the high side of the last
cell is the box wall and is not stored (it is zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["box_mask", "cell_velocity", "divergence", "open_faces", "slab_mask"]


def _shift_down(t: torch.Tensor, d: int) -> torch.Tensor:
    """t at I + e_d (zero beyond the last cell), same shape as t."""
    pad = torch.zeros_like(t.narrow(d, 0, 1))
    return torch.cat([t.narrow(d, 1, t.shape[d] - 1), pad], dim=d)


def open_faces(solid: torch.Tensor) -> torch.Tensor:
    """1.0 where the face on the low side of cell I along d joins two fluid cells, shape (*solid.shape, dim)."""
    fluid = ~solid.to(torch.bool)
    dim = solid.dim()
    out = torch.zeros(*solid.shape, dim)
    for d in range(dim):
        n = solid.shape[d]
        both = fluid.narrow(d, 1, n - 1) & fluid.narrow(d, 0, n - 1)
        out[..., d].narrow(d, 1, n - 1).copy_(both.float())
    return out


def divergence(velocity: torch.Tensor, cell_size: float) -> torch.Tensor:
    """Σ_d (v_d[I + e_d] − v_d[I]) / h [1/s], shape velocity.shape[:-1]; the high walls contribute 0."""
    dim = velocity.shape[-1]
    div = torch.zeros_like(velocity[..., 0])
    for d in range(dim):
        vd = velocity[..., d]
        div = div + (_shift_down(vd, d) - vd)
    return div / cell_size


def cell_velocity(velocity: torch.Tensor) -> torch.Tensor:
    """Mean of the two faces of each cell per axis [m/s], shape velocity.shape."""
    dim = velocity.shape[-1]
    return torch.stack([0.5 * (velocity[..., d] + _shift_down(velocity[..., d], d)) for d in range(dim)], dim=-1)


def box_mask(resolution: Sequence[int], cell_size: float, lower: Sequence[float],
             upper: Sequence[float]) -> torch.Tensor:
    """Cells whose centers lie in the box [lower, upper] [m], bool tensor of shape `resolution`."""
    axes = [(torch.arange(n, dtype=torch.float64) + 0.5) * cell_size for n in resolution]
    grids = torch.meshgrid(*axes, indexing="ij")
    mask = torch.ones(tuple(resolution), dtype=torch.bool)
    for g, lo, hi in zip(grids, lower, upper):
        mask &= (g >= lo) & (g <= hi)
    return mask


def slab_mask(resolution: Sequence[int], axis: int, first: int, last: int) -> torch.Tensor:
    """Solid everywhere except the cells first..last (inclusive) along `axis`, bool tensor of shape `resolution`.

    FluidLab's Circulation keeps only a horizontal slab of its 128³ air grid free
    (y-cells 61..67); the rest is solid.
    """
    idx = torch.arange(resolution[axis])
    keep = (idx >= first) & (idx <= last)
    shape = [1] * len(resolution)
    shape[axis] = resolution[axis]
    return (~keep).view(shape).expand(*resolution).clone()
