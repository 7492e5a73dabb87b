"""Inputs and targets of learned particle simulators (the GNS conventions).

Time is measured in model steps (one stored frame): a velocity is ``x_t − x_{t−1}`` [m per
step] and an acceleration ``x_{t+1} − 2 x_t + x_{t−1}`` [m per step²]. Both are normalised by
statistics of the training data, inflated by the training noise as in GNS, so that the
network sees O(1) inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Normalizer", "edge_features", "node_features", "particle_spacing", "random_walk_noise", "velocities"]


def velocities(history: torch.Tensor) -> torch.Tensor:
    """Finite-difference velocities [m/step], shape (count, frames − 1, dim), of positions (count, frames, dim)."""
    return history[:, 1:] - history[:, :-1]


class Normalizer(nn.Module):
    """Per-axis mean and standard deviation of velocities and accelerations (buffers, so they
    travel with the weights in a saved model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("vel_mean", torch.zeros(dim))
        self.register_buffer("vel_std", torch.ones(dim))
        self.register_buffer("acc_mean", torch.zeros(dim))
        self.register_buffer("acc_std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, trajectories: Sequence[torch.Tensor], noise_std: float = 0.0, frame_stride: int = 1) -> None:
        """Set the statistics from position arrays of shape (frames, count, dim).

        The standard deviations are inflated by `noise_std` in quadrature (the GNS recipe),
        and floored so a motionless axis does not divide by zero.
        """
        vel_sum = acc_sum = vel_sq = acc_sq = 0.0
        nv = na = 0
        for x in trajectories:
            x = x[::frame_stride].double()
            v = x[1:] - x[:-1]
            a = v[1:] - v[:-1]
            vel_sum, vel_sq, nv = vel_sum + v.sum((0, 1)), vel_sq + (v * v).sum((0, 1)), nv + v.shape[0] * v.shape[1]
            acc_sum, acc_sq, na = acc_sum + a.sum((0, 1)), acc_sq + (a * a).sum((0, 1)), na + a.shape[0] * a.shape[1]
        if nv == 0 or na == 0:
            raise ValueError("trajectories: at least one trajectory with 3 frames is needed for the statistics")
        vm, am = vel_sum / nv, acc_sum / na
        vs = torch.sqrt(torch.clamp(vel_sq / nv - vm * vm, min=0) + noise_std**2)
        as_ = torch.sqrt(torch.clamp(acc_sq / na - am * am, min=0) + noise_std**2)
        floor = 1e-8 + 1e-6 * float(torch.max(vs))
        self.vel_mean.copy_(vm)
        self.vel_std.copy_(torch.clamp(vs, min=floor))
        self.acc_mean.copy_(am)
        self.acc_std.copy_(torch.clamp(as_, min=floor))
        self.fitted.fill_(True)


def random_walk_noise(history: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """GNS training noise for a position history (count, frames, dim): a random walk of
    velocity noise whose last velocity has standard deviation `std`, summed into position
    noise; the oldest frame is left exact."""
    steps = history.shape[1] - 1
    vel_noise = torch.randn(history.shape[0], steps, history.shape[2], generator=generator, dtype=history.dtype,
                            device="cpu" if generator is not None else history.device).to(history.device)
    vel_noise = torch.cumsum(vel_noise * (std / steps**0.5), dim=1)
    pos_noise = torch.cumsum(vel_noise, dim=1)
    return torch.cat([torch.zeros_like(pos_noise[:, :1]), pos_noise], dim=1)


def node_features(history: torch.Tensor, norm: Normalizer, *, radius: float, bounds: torch.Tensor | None,
                  type_embedding: torch.Tensor | None) -> torch.Tensor:
    """Per-particle inputs: normalised velocity history, clipped distances to the walls, type embedding.

    Args:
        history: Positions [m], shape (count, frames, dim).
        norm: Velocity statistics.
        radius: Connectivity radius [m] scaling the wall distances.
        bounds: Domain box [m], shape (2, dim), or None (no wall features).
        type_embedding: Embedded particle types, shape (count, type_dim), or None.

    Returns:
        Shape (count, (frames − 1)·dim [+ 2·dim] [+ type_dim]).
    """
    v = (velocities(history) - norm.vel_mean) / norm.vel_std
    parts = [v.flatten(1)]
    if bounds is not None:
        x = history[:, -1]
        walls = torch.cat([x - bounds[0], bounds[1] - x], dim=1) / radius
        parts.append(torch.clamp(walls, -1.0, 1.0))
    if type_embedding is not None:
        parts.append(type_embedding)
    return torch.cat(parts, dim=1)


def edge_features(x: torch.Tensor, edge_index: torch.Tensor, radius: float) -> torch.Tensor:
    """Relative displacement (x_source − x_target)/radius and its length: shape (edges, dim + 1)."""
    d = (x[edge_index[0]] - x[edge_index[1]]) / radius
    return torch.cat([d, torch.linalg.vector_norm(d, dim=1, keepdim=True)], dim=1)


def particle_spacing(positions: Sequence[torch.Tensor], *, samples: int = 8) -> float:
    """Median nearest-neighbour distance [m] of the first `samples` clouds (each (count, dim)): the
    particle spacing that connectivity radii are expressed in."""
    from physim.neighbors import neighbor_graph

    d = []
    for x in list(positions)[:samples]:
        e = neighbor_graph(x, k=1)
        d.append(torch.linalg.vector_norm(x[e[0]] - x[e[1]], dim=1).median())
    return float(torch.stack(d).median())
