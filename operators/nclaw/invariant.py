"""NCLaw's elastic law on the right stretch: invariants in, a symmetric stress out, rotated back.

F = R U by polar decomposition; E = U − I is frame-invariant (R absorbs any rotation
Q applied to F), so every function of E is too. The Biot-type stress is built in the
Rivlin–Ericksen form of an isotropic symmetric tensor function,

    T(E) = λ tr(E) I + 2μ E + σ₀ [ (z · g(z)) I + b(z) Ê + c(z) Ê² ],     Ê = E / ε₀,

where g, b, c come from an MLP on the invariants z of Ê, and P = R T. Hence

- P(Q F) = Q P(F) for every rotation Q (R → Q R, E unchanged): equivariant by construction;
- P(I) = 0 exactly: E = 0 exactly, so z = 0 and every term is a product with z or Ê;
- isotropy (P(F Q) = P(F) Q) follows from the Rivlin–Ericksen form.

The last layer starts at zero, so an untrained law is linear corotated elasticity with
the given (E₀, ν₀); μ and λ are learnable too.
"""

from __future__ import annotations

import math

import torch
from physim.operators.base import OperatorBase
from physim.operators.nclaw.tensors import SMOOTH_DELTA, det, dev, eye_like, polar, smooth_norm, trace
from torch import nn

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError

__all__ = [
    "INVARIANT_COUNT",
    "LOG_GAIN",
    "InvariantElasticLaw",
    "InvariantHead",
    "check_F",
    "check_common",
    "invariants",
    "lame",
    "zero_last_mlp",
]

INVARIANT_COUNT = 4

LOG_GAIN = 10.0
"""Gain g of logarithmic scale parameters, value = value₀ · exp(g θ): Adam moves a parameter by
about the learning rate per step, and moduli or yield strains must move by factors, weights by
percents."""


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


def invariants(E_hat: torch.Tensor, J: torch.Tensor, strain_scale: float) -> torch.Tensor:
    """Rotation-invariant features of a normalised symmetric strain, all exactly 0 at Ê = 0.

    Args:
        E_hat: Normalised strain Ê, shape (..., d, d).
        J: det F, shape (...).
        strain_scale: ε₀ used to normalise J − 1.

    Returns:
        (tr Ê, |dev Ê|, tr(dev Ê³)/(|dev Ê|² + δ²), (J − 1)/ε₀), shape (..., 4).
    """
    D = dev(E_hat)
    dd = (D * D).sum((-1, -2))
    lode = trace(D @ D @ D) / (dd + SMOOTH_DELTA**2)
    return torch.stack([trace(E_hat), smooth_norm(dd), lode, (J - 1) / strain_scale], dim=-1)


def zero_last_mlp(n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += [nn.Linear(n_in if k == 0 else width, width), nn.GELU()]
    last = nn.Linear(width if depth else n_in, n_out)
    # Zero last layer: an untrained law is exactly its analytic skeleton (linear elasticity, or
    # the identity projection), and training starts from there.
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class InvariantHead(nn.Module):
    """Isotropic symmetric tensor function X(Ê) = a(z) I + b(z) Ê + c(z) Ê², zero at Ê = 0.

    The I-coefficient must vanish at rest; it is written a(z) = z · g(z) (every smooth
    function vanishing at 0 has this form), so a(0) = 0 holds exactly in floating point,
    whatever rounding the network's matrix products see.
    """

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.net = zero_last_mlp(INVARIANT_COUNT, INVARIANT_COUNT + 2, width, depth)

    def forward(self, E_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        a = (z * out[..., :INVARIANT_COUNT]).sum(-1)
        b, c = out[..., INVARIANT_COUNT], out[..., INVARIANT_COUNT + 1]
        I = eye_like(E_hat)
        return a[..., None, None] * I + b[..., None, None] * E_hat + c[..., None, None] * (E_hat @ E_hat)


def check_common(dim: int, width: int, depth: int, strain_scale: float) -> None:
    check_int("dim", dim, 2, 3)
    check_int("width", width, 1)
    check_int("depth", depth, 0)
    check_positive("strain_scale", strain_scale)


class InvariantElasticLaw(OperatorBase, name="nclaw-invariant"):
    """Learned elastic law P(F) = R T(E) on invariants of the right stretch (NCLaw variant a).

    Args:
        dim: Spatial dimension, 2 or 3.
        width: Hidden units per layer of the coefficient MLP.
        depth: Hidden layers of the coefficient MLP.
        youngs_modulus: Initial Young's modulus E₀ [Pa] of the linear skeleton; also sets the
            stress scale σ₀ = E₀ ε₀ of the network's output.
        poisson_ratio: Initial Poisson's ratio ν₀ of the linear skeleton.
        strain_scale: Strain ε₀ that normalises the network's inputs.

    Call with F of shape (..., dim, dim); returns the first Piola–Kirchhoff stress P [Pa],
    same shape. `kirchhoff(F)` returns τ = P Fᵀ.
    """

    def __init__(self, *, dim: int = 3, width: int = 64, depth: int = 2, youngs_modulus: float = 1e5,
                 poisson_ratio: float = 0.3, strain_scale: float = 0.05):
        super().__init__()
        check_common(dim, width, depth, strain_scale)
        check_positive("youngs_modulus", youngs_modulus)
        check_range("poisson_ratio", poisson_ratio, -1.0, 0.5, low_inclusive=False, high_inclusive=False)
        self.dim = dim
        self.strain_scale = float(strain_scale)
        self.stress_scale = float(youngs_modulus) * self.strain_scale
        mu, lam = lame(youngs_modulus, poisson_ratio)
        self.register_buffer("mu0", torch.tensor(mu))
        self.register_buffer("lam0", torch.tensor(lam))
        # Moduli as μ₀·exp(g θ): positive, and Adam's steps are relative changes whatever the scale.
        self.log_mu = nn.Parameter(torch.zeros(()))
        self.log_lam = nn.Parameter(torch.zeros(()))
        self.head = InvariantHead(width, depth)

    def moduli(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current Lamé parameters (μ, λ) [Pa] of the linear skeleton."""
        return self.mu0 * torch.exp(LOG_GAIN * self.log_mu), self.lam0 * torch.exp(LOG_GAIN * self.log_lam)

    def biot_stress(self, E: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        """Symmetric stress T(E) [Pa] from the Biot strain E = U − I, shape (..., d, d)."""
        E_hat = E / self.strain_scale
        z = invariants(E_hat, J, self.strain_scale)
        mu, lam = self.moduli()
        linear = lam * trace(E)[..., None, None] * eye_like(E) + 2 * mu * E
        return linear + self.stress_scale * self.head(E_hat, z)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-invariant")
        R, E = polar(F)
        return R @ self.biot_stress(E, det(F))

    def kirchhoff(self, F: torch.Tensor) -> torch.Tensor:
        """Kirchhoff stress τ = P Fᵀ [Pa], shape (..., d, d)."""
        return self(F) @ F.transpose(-1, -2)

    def wave_speed(self, density: float) -> float:
        """P-wave speed sqrt((λ + 2μ)/ρ) [m/s] of the linear skeleton, for the CFL bound."""
        mu, lam = self.moduli()
        return math.sqrt(float(lam + 2 * mu) / density)
