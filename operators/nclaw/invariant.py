"""NCLaw's elastic law on the right stretch: invariants in, a symmetric stress out, rotated back.

F = R U by polar decomposition; E = U − I is frame-invariant (R absorbs any rotation
Q applied to F), so every function of E is too. The Biot-type stress is built in the
Rivlin–Ericksen form of an isotropic symmetric tensor function,

    T(E) = λ tr(E) I + 2μ E + σ₀ [ (z · g(z)) I + b(z) Ê + c(z) Ê² ],     Ê = sat(E / ε₀),

where g, b, c come from an MLP on the invariants z of Ê, and P = R T; sat(x) =
x / sqrt(1 + |x|²/16) bounds the learned correction (see `common.saturate`). Hence

- P(Q F) = Q P(F) for every rotation Q (R → Q R, E unchanged): equivariant by construction;
- P(I) = 0 exactly: E = 0 exactly, so z = 0 and every term is a product with z or Ê;
- isotropy (P(F Q) = P(F) Q) follows from the Rivlin–Ericksen form.

The last layer starts at zero, so an untrained law is linear corotated elasticity with
the given (E₀, ν₀); μ and λ are learnable too.
"""

from __future__ import annotations

import torch
from physim.operators.nclaw.common import ElasticLawBase, check_common, check_F, saturate, zero_last_mlp
from physim.operators.nclaw.tensors import SMOOTH_DELTA, det, dev, eye_like, polar, smooth_norm, trace
from torch import nn

__all__ = ["INVARIANT_COUNT", "InvariantElasticLaw", "InvariantHead", "invariants", "saturated_strain"]

INVARIANT_COUNT = 4


def invariants(E_hat: torch.Tensor, J: torch.Tensor, strain_scale: float) -> torch.Tensor:
    """Rotation-invariant features of a normalised symmetric strain, all exactly 0 at Ê = 0.

    Args:
        E_hat: Normalised strain Ê, shape (..., d, d).
        J: det F, shape (...).
        strain_scale: ε₀ used to normalise J − 1.

    Returns:
        (tr Ê, |dev Ê|, tr(dev Ê³)/(|dev Ê|² + δ²), sat((J − 1)/ε₀)), shape (..., 4); pass a
        saturated Ê (`saturated_strain`) to keep them all bounded.
    """
    D = dev(E_hat)
    dd = (D * D).sum((-1, -2))
    lode = trace(D @ D @ D) / (dd + SMOOTH_DELTA**2)
    u = (J - 1) / strain_scale
    return torch.stack([trace(E_hat), smooth_norm(dd), lode, saturate(u, u * u)], dim=-1)


def saturated_strain(E_hat: torch.Tensor) -> torch.Tensor:
    """Ê scaled by 1/sqrt(1 + |Ê|²/S²) (see `common.saturate`), shape (..., d, d)."""
    return saturate(E_hat, (E_hat * E_hat).sum((-1, -2)))


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


class InvariantElasticLaw(ElasticLawBase, name="nclaw-invariant"):
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
        self._setup_skeleton(dim, youngs_modulus, poisson_ratio, strain_scale)
        self.head = InvariantHead(width, depth)

    def biot_stress(self, E: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        """Symmetric stress T(E) [Pa] from the Biot strain E = U − I, shape (..., d, d)."""
        E_sat = saturated_strain(E / self.strain_scale)
        z = invariants(E_sat, J, self.strain_scale)
        mu, lam = self.moduli()
        linear = lam * trace(E)[..., None, None] * eye_like(E) + 2 * mu * E
        return linear + self.stress_scale * self.head(E_sat, z)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-invariant")
        R, E = polar(F)
        return R @ self.biot_stress(E, det(F))
