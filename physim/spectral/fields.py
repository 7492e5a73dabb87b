"""Forcings and initial vorticity fields of the 2D Navier–Stokes solver.

- `kolmogorov_forcing`: f = 0.1 (sin 2π(x+y)/L + cos 2π(x+y)/L), the forcing of the FNO
  Navier–Stokes benchmark (Li et al. 2021) used by Spectral-Refiner.
- `user_forcing`: a user's function f(x, y) or array, checked to be periodic.
- `gaussian_random_field`: ω̂_k ∝ (|k|² + τ²)^{−α/2}, i.e. a sample of N(0, (−Δ + τ²)^{−α}).
- `mcwilliams_vorticity`: McWilliams (1984) decaying-turbulence spectrum
  |ψ̂|² ∝ k⁻¹ (1 + (k/k₀)⁴)⁻¹, normalised to a given kinetic energy.
- `taylor_green_vorticity`: the exact Taylor–Green vortex, a steady eigenfunction of the
  nonlinear term that decays as exp(−2νκ²t).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from physim.config import check_int, check_positive
from physim.errors import ConfigError
from physim.spectral.grid import SpectralGrid, check_field

__all__ = [
    "gaussian_random_field",
    "kolmogorov_forcing",
    "mcwilliams_vorticity",
    "taylor_green_vorticity",
    "user_forcing",
]


def _generator(seed: int | None, device) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is not None:
        check_int("seed", seed, 0)
        gen.manual_seed(seed)
    else:
        gen.seed()
    return gen


def kolmogorov_forcing(grid: SpectralGrid, amplitude: float = 0.1, wavenumber: int = 1) -> torch.Tensor:
    """f = a (sin 2πm(x+y)/L + cos 2πm(x+y)/L) [1/s²], shape (n, n)."""
    check_int("wavenumber", wavenumber, 1, grid.n // 3)
    x, y = grid.coordinates()
    phase = 2 * math.pi * wavenumber * (x + y) / grid.length
    return amplitude * (torch.sin(phase) + torch.cos(phase))


def user_forcing(grid: SpectralGrid, forcing: torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 *, rtol: float = 1e-6) -> torch.Tensor:
    """A user-supplied forcing as a field of shape (n, n) on `grid`.

    Args:
        forcing: A tensor of shape (n, n) or (batch, n, n), or a function ``f(x, y)`` of
            coordinate tensors [m] returning such a tensor. A function is checked to be
            periodic with period L in x and y (the solver cannot represent anything else).
        rtol: Relative tolerance of the periodicity check.

    Raises:
        ConfigError: wrong shape, NaN/inf, or a function that is not L-periodic.
    """
    if callable(forcing):
        x, y = grid.coordinates()
        f = torch.as_tensor(forcing(x, y), dtype=x.dtype, device=x.device)
        scale = float(f.abs().max()) if f.numel() else 0.0
        for shifted in (forcing(x + grid.length, y), forcing(x, y + grid.length)):
            gap = float((torch.as_tensor(shifted, dtype=x.dtype, device=x.device) - f).abs().max())
            if gap > rtol * max(scale, 1e-300) + 1e-300:
                raise ConfigError("forcing", getattr(forcing, "__name__", "function"),
                                  f"a function periodic in x and y with period L={grid.length} "
                                  f"(f(x+L, y) or f(x, y+L) differs from f(x, y) by {gap:.3g})")
    else:
        f = forcing
    check_field("forcing", f, grid.n)
    return f.to(dtype=grid.k2.dtype, device=grid.k2.device)


def gaussian_random_field(grid: SpectralGrid, batch: int = 1, *, alpha: float = 2.5, tau: float = 7.0,
                          sigma: float | None = None, seed: int | None = None) -> torch.Tensor:
    """Samples of the Gaussian measure N(0, σ² (−Δ + τ²)^{−α}) with zero mean, shape (batch, n, n).

    Wavenumbers are those of the unit square (|k|² = 4π²(k_x² + k_y²) for L = 1), as in the
    FNO data generator; the default σ = τ^{α−1} makes the field O(1).

    Args:
        alpha: Smoothness exponent α > 1 (the field is in H^s for s < α − 1).
        tau: Inverse length scale τ > 0.
        sigma: Amplitude σ; None means τ^{α−1}.
        seed: Seed of this draw (None: fresh entropy).
    """
    check_int("batch", batch, 1)
    check_positive("alpha", alpha)
    check_positive("tau", tau)
    if alpha <= 1:
        raise ConfigError("alpha", alpha, "alpha > 1 (otherwise the field has infinite variance)")
    sigma = tau ** (alpha - 1.0) if sigma is None else sigma
    check_positive("sigma", sigma)
    k2_unit = grid.k2 * (grid.length**2)  # the spectrum is defined on the unit square's wavenumbers
    amp = math.sqrt(2.0) * sigma * (k2_unit + tau**2) ** (-alpha / 2.0)
    amp = torch.where(grid.k2 > 0, amp, 0.0)
    gen = _generator(seed, grid.k2.device)
    noise = torch.randn((batch, grid.n, grid.n), generator=gen, dtype=grid.k2.dtype, device=grid.k2.device)
    xi = torch.fft.rfft2(noise, norm="ortho")  # unit-variance complex white noise, Hermitian by construction
    return grid.to_physical(amp * xi)


def mcwilliams_vorticity(grid: SpectralGrid, batch: int = 1, *, k0: float = 4.0, energy: float = 0.5,
                         seed: int | None = None) -> torch.Tensor:
    """McWilliams (1984) initial vorticity, shape (batch, n, n).

    The streamfunction has random phases and the spectrum |ψ̂(k)|² ∝ k⁻¹ (1 + (k/k₀)⁴)⁻¹ with
    k the wavenumber magnitude in units of 2π/L; the field is scaled so that the mean
    kinetic energy ½⟨|u|²⟩ equals `energy` [m²/s²].
    """
    check_int("batch", batch, 1)
    check_positive("k0", k0)
    check_positive("energy", energy)
    k = grid.k2.sqrt() * grid.length / (2 * math.pi)
    spec = torch.where(k > 0, 1.0 / torch.where(k > 0, k, 1.0) / (1.0 + (k / k0) ** 4), 0.0)
    gen = _generator(seed, grid.k2.device)
    noise = torch.randn((batch, grid.n, grid.n), generator=gen, dtype=grid.k2.dtype, device=grid.k2.device)
    xi = torch.fft.rfft2(noise, norm="ortho")
    psi_hat = grid.dealias * spec.sqrt() * xi
    w_hat = grid.k2 * psi_hat
    mean_energy = 0.5 * grid.norm_sq(w_hat * grid.inv_k2.sqrt()) / grid.length**2
    w_hat = w_hat * torch.sqrt(energy / mean_energy)[:, None, None]
    return grid.to_physical(w_hat)


def taylor_green_vorticity(grid: SpectralGrid, amplitude: float = 1.0, mode: int = 1) -> torch.Tensor:
    """ω = 2κ² A sin(κx) sin(κy), κ = 2πm/L (streamfunction A sin κx sin κy), shape (n, n)."""
    check_int("mode", mode, 1, grid.n // 3)
    x, y = grid.coordinates()
    kappa = 2 * math.pi * mode / grid.length
    return 2 * kappa**2 * amplitude * torch.sin(kappa * x) * torch.sin(kappa * y)
