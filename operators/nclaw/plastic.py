"""NCLaw's learned plastic projection: a radial return mapping with a learned yield surface.

The trial deformation gradient is split by polar decomposition, F = R (I + E), and the
Biot strain E (normalised, Ê = E/ε₀) into its mean p = tr Ê / d and deviator D = dev Ê
with norm q = |D|. The projection returns the trial state towards a learned admissible set

    D' = min(1, k(z) / q) D,          p' = min(p, κ(z))  (kept where the stretch would collapse),
    F' = F + ε₀ R [(p' − p) I + (D' − D)],

where the yield radius k and the tension cut-off κ are positive functions of the strain
invariants z (of the saturated strain, so they stay bounded), k = k₀ exp(g h_k(z)),
κ = κ₀ exp(g h_κ(z)), from an MLP whose last layer starts at zero. This covers the four
materials' return mappings in one form: von Mises (k constant), Drucker–Prager (k growing
with compression, κ ≈ 0), a fluid (k → 0, F → volume only), an elastic solid (k, κ beyond
any strain seen).

By construction the projection is rotation-equivariant (F'(Q F) = Q F'(F)) and isotropic,
never increases the elastic strain (|D'| ≤ |D|, p' ≤ p: no projection can make a rollout
blow up), keeps an undeformed particle undeformed, and inside the admissible set
(q ≤ k, p ≤ κ) returns F bit for bit. At initialisation the admissible set is the ball
q ≤ k₀, p ≤ κ₀ (strains of `yield_strain` = 5 % by default): the identity for small strains.
"""

from __future__ import annotations

import math

import torch
from physim.operators.base import OperatorBase
from physim.operators.nclaw.common import LOG_GAIN, check_common, check_F, zero_last_mlp
from physim.operators.nclaw.invariant import INVARIANT_COUNT, invariants, saturated_strain
from physim.operators.nclaw.tensors import det, dev, eye_like, polar, smooth_norm, trace

from physim.config import check_positive

__all__ = ["NeuralPlasticity"]


class NeuralPlasticity(OperatorBase, name="nclaw-plastic"):
    """Learned, rotation-equivariant return mapping F_trial → F (identity for small strains at initialisation).

    Args:
        dim: Spatial dimension, 2 or 3.
        width: Hidden units per layer of the yield-surface MLP.
        depth: Hidden layers of the yield-surface MLP.
        strain_scale: Strain ε₀ that normalises inputs and outputs.
        yield_strain: Initial yield radius k₀ε₀ of the deviatoric strain |dev E| (also the
            initial tension cut-off κ₀ε₀ of the mean strain tr E / d).

    Call with F_trial of shape (..., dim, dim); returns the projected F, same shape.
    """

    def __init__(self, *, dim: int = 3, width: int = 64, depth: int = 2, strain_scale: float = 0.05,
                 yield_strain: float = 0.05):
        super().__init__()
        check_common(dim, width, depth, strain_scale)
        check_positive("yield_strain", yield_strain)
        self.dim = dim
        self.strain_scale = float(strain_scale)
        self.k0 = float(yield_strain) / self.strain_scale
        self.net = zero_last_mlp(INVARIANT_COUNT, 2, width, depth)

    def surface(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Yield radius k and tension cut-off κ (in units of ε₀) at invariants z, shapes (...)."""
        h = self.net(z)
        return self.k0 * torch.exp(LOG_GAIN * h[..., 0]), self.k0 * torch.exp(LOG_GAIN * h[..., 1])

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-plastic")
        R, E = polar(F)
        E_hat = E / self.strain_scale
        k, kappa = self.surface(invariants(saturated_strain(E_hat), det(F), self.strain_scale))
        D = dev(E_hat)
        q = smooth_norm((D * D).sum((-1, -2)))
        p = trace(E_hat) / self.dim
        # k / max(q, k) is exactly 1 inside the yield surface, so F comes back unchanged there.
        scale = k / torch.maximum(q, k)
        # The stretch I + ε₀(p' I + s D) must stay positive definite for E' to be the strain of F':
        # its smallest eigenvalue is at least 1 + ε₀(p' − c_d s q). The cut-off never pushes it below
        # 1/4 (and never raises p), which only bites for deviatoric strains beyond ~75 %.
        floor = math.sqrt((self.dim - 1) / self.dim) * scale * q - 0.75 / self.strain_scale
        p_new = torch.maximum(torch.minimum(p, kappa), torch.minimum(p, floor))
        shrink, dp = scale - 1.0, p_new - p
        step = dp[..., None, None] * eye_like(F) + shrink[..., None, None] * D
        return F + self.strain_scale * (R @ step)
