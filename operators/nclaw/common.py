"""What the NCLaw laws share: argument checks, the zero-initialised MLP, the linear elastic skeleton."""

from __future__ import annotations

import math

import torch
from physim.operators.base import OperatorBase
from torch import nn

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError

__all__ = ["LOG_GAIN", "SATURATION", "ElasticLawBase", "check_F", "check_common", "lame", "saturate", "zero_last_mlp"]

LOG_GAIN = 10.0
"""Gain g of logarithmic scale parameters, value = value₀ · exp(g θ): Adam moves a parameter by
about the learning rate per step, and moduli or yield strains must move by factors, weights by
percents."""


SATURATION = 4.0
"""Normalised strain |Ê| = |E|/ε₀ beyond which the networks' inputs saturate (20 % strain at ε₀ = 5 %)."""


def saturate(x: torch.Tensor, sq_norm: torch.Tensor) -> torch.Tensor:
    """x / sqrt(1 + |x|²/S²): the identity for small x, bounded by S, a function of |x| only.

    Applied to the networks' strain inputs, it keeps their polynomial features bounded, so the
    learned correction of the stress stays bounded and the linear skeleton governs large
    strains: one optimizer step cannot make a rollout blow up through a cubic term. Scaling by a
    function of the norm keeps equivariance and isotropy, and 0 stays exactly 0.

    Args:
        x: Tensor of shape (..., *s).
        sq_norm: |x|², shape (...) broadcastable against x after adding trailing axes.
    """
    scale = torch.rsqrt(1.0 + sq_norm / SATURATION**2)
    return x * scale.reshape(scale.shape + (1,) * (x.ndim - scale.ndim))


def lame(youngs_modulus: float, poisson_ratio: float) -> tuple[float, float]:
    """Lamé parameters (μ, λ) [Pa] from Young's modulus [Pa] and Poisson's ratio."""
    mu = youngs_modulus / (2 * (1 + poisson_ratio))
    lam = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))
    return mu, lam


def check_F(F: torch.Tensor, dim: int, who: str) -> None:
    """Raise `ConfigError` unless F has shape (..., dim, dim) and a floating dtype."""
    if not isinstance(F, torch.Tensor) or F.ndim < 2 or F.shape[-2:] != (dim, dim) or not F.is_floating_point():
        shape = tuple(F.shape) if isinstance(F, torch.Tensor) else type(F).__name__
        raise ConfigError(f"{who}.F", shape, f"a floating-point tensor of shape (..., {dim}, {dim})")


def check_common(dim: int, width: int, depth: int, strain_scale: float) -> None:
    """Validate the arguments every law takes."""
    check_int("dim", dim, 2, 3)
    check_int("width", width, 1)
    check_int("depth", depth, 0)
    check_positive("strain_scale", strain_scale)


def zero_last_mlp(n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    """GELU MLP whose last layer starts at zero."""
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += [nn.Linear(n_in if k == 0 else width, width), nn.GELU()]
    last = nn.Linear(width if depth else n_in, n_out)
    # Zero last layer: an untrained law is exactly its analytic skeleton (linear elasticity, or
    # the identity projection), and training starts from there.
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class ElasticLawBase(OperatorBase):
    """A learned stress on top of a linear isotropic skeleton with learnable Lamé parameters.

    Subclasses call `_setup_skeleton` in their constructor and implement ``forward(F) -> P``.
    """

    def _setup_skeleton(self, dim: int, youngs_modulus: float, poisson_ratio: float, strain_scale: float) -> None:
        check_int("dim", dim, 2, 3)
        check_positive("youngs_modulus", youngs_modulus)
        check_range("poisson_ratio", poisson_ratio, -1.0, 0.5, low_inclusive=False, high_inclusive=False)
        check_positive("strain_scale", strain_scale)
        self.dim = dim
        self.strain_scale = float(strain_scale)
        # Stress of the network's unit output: the skeleton's stress at the reference strain ε₀.
        self.stress_scale = float(youngs_modulus) * self.strain_scale
        mu, lam = lame(youngs_modulus, poisson_ratio)
        self.register_buffer("mu0", torch.tensor(mu))
        self.register_buffer("lam0", torch.tensor(lam))
        # Moduli as μ₀·exp(g θ): positive, and Adam's steps are relative changes whatever the scale.
        self.log_mu = nn.Parameter(torch.zeros(()))
        self.log_lam = nn.Parameter(torch.zeros(()))

    def moduli(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current Lamé parameters (μ, λ) [Pa] of the linear skeleton."""
        return self.mu0 * torch.exp(LOG_GAIN * self.log_mu), self.lam0 * torch.exp(LOG_GAIN * self.log_lam)

    def kirchhoff(self, F: torch.Tensor) -> torch.Tensor:
        """Kirchhoff stress τ = P Fᵀ [Pa], shape (..., d, d)."""
        return self(F) @ F.transpose(-1, -2)

    def wave_speed(self, density: float) -> float:
        """P-wave speed sqrt((λ + 2μ)/ρ) [m/s] of the linear skeleton."""
        mu, lam = self.moduli()
        return math.sqrt(float(lam + 2 * mu) / density)
