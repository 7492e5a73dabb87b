"""Shared fixtures of the gas-grid tests: small configurations and analytic MAC fields."""

from __future__ import annotations

import torch

from physim.gas import FanConfig, GasConfig

F64 = torch.float64


def small_config(**overrides) -> GasConfig:
    """A 2D float64 grid of 10 × 12 cells of 0.1 m with one fan, for gradient checks."""
    kw = {"resolution": (10, 12), "cell_size": 0.1, "dt": 0.05, "buoyancy": 1.5, "smoke_dissipation": 0.1,
              "velocity_dissipation": 0.05, "dtype": "float64", "jacobi_iterations": 20, "jacobi_omega": 0.8,
              "fans": (FanConfig(center=(0.37, 0.33), direction=(0.4, 1.0), strength=3.0, radius=0.15, mix=0.3,
                              emit=(1.0,)),)}
    kw.update(overrides)
    return GasConfig(**kw)


def stream_velocity(psi: torch.Tensor, h: float) -> torch.Tensor:
    """Face velocities of a 2D stream function on cell corners, shape (nx + 1, ny + 1) → (nx, ny, 2).

    u = ∂ψ/∂y, v = −∂ψ/∂x on the faces: discretely divergence-free, and zero through the
    walls when ψ vanishes on the boundary.
    """
    u = (psi[:-1, 1:] - psi[:-1, :-1]) / h
    v = -(psi[1:, :-1] - psi[:-1, :-1]) / h
    return torch.stack([u, v], dim=-1)


def gradient_velocity(phi: torch.Tensor, h: float) -> torch.Tensor:
    """Face gradient of a 2D cell-centered potential (zero on the wall faces), shape (nx, ny) → (nx, ny, 2)."""
    g = torch.zeros(*phi.shape, 2, dtype=phi.dtype)
    g[1:, :, 0] = (phi[1:] - phi[:-1]) / h
    g[:, 1:, 1] = (phi[:, 1:] - phi[:, :-1]) / h
    return g


def vortex_psi(nx: int, ny: int, h: float) -> torch.Tensor:
    """A single smooth vortex filling the box, zero on the boundary, shape (nx + 1, ny + 1)."""
    x = torch.arange(nx + 1, dtype=F64) * h
    y = torch.arange(ny + 1, dtype=F64) * h
    X, Y = torch.meshgrid(x, y, indexing="ij")
    return 0.05 * torch.sin(torch.pi * X / (nx * h)) * torch.sin(torch.pi * Y / (ny * h))
