"""physim.spectral: differentiable pseudo-spectral 2D incompressible Navier–Stokes (torch only).

- `NavierStokes2D` / `NSEConfig` / `NSEState`: the simulator (vorticity form, 2/3
  dealiasing, Crank–Nicolson/IMEX time stepping, batched, CPU or CUDA, autograd).
- `SpectralGrid`: wavenumbers, Poisson solve, velocity, advection, Parseval norms.
- Forcings and initial fields in `physim.spectral.fields`.
- `cn_residual_hat`: the Crank–Nicolson residual of a trajectory (Spectral-Refiner's loss).
- Datasets: `physim.spectral.data` (`physim data nse ...`).
"""

from physim.spectral.fields import (
    gaussian_random_field,
    kolmogorov_forcing,
    mcwilliams_vorticity,
    taylor_green_vorticity,
    user_forcing,
)
from physim.spectral.grid import SpectralGrid, check_field
from physim.spectral.solver import NavierStokes2D, NSEConfig, NSEState, cn_residual_hat, imex_step_hat

__all__ = [
    "NSEConfig",
    "NSEState",
    "NavierStokes2D",
    "SpectralGrid",
    "check_field",
    "cn_residual_hat",
    "gaussian_random_field",
    "imex_step_hat",
    "kolmogorov_forcing",
    "mcwilliams_vorticity",
    "taylor_green_vorticity",
    "user_forcing",
]
