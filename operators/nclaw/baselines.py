"""Plain-MLP baselines on the 9 (or 4) entries of F: no rotation equivariance, no rest-state prior.

These are what NCLaw's priors are measured against. For a fair comparison they get
the same capacity, the same input/output scales and the same starting point: a linear
skip initialised to small-strain linear elasticity with the same (E₀, ν₀) and an MLP
whose last layer starts at zero. Nothing keeps them objective or stress-free at rest
once training moves the weights (the MLP has biases and sees F − I entry by entry).
"""

from __future__ import annotations

import torch
from physim.operators.base import OperatorBase
from physim.operators.nclaw.common import ElasticLawBase, check_common, check_F, zero_last_mlp
from physim.operators.nclaw.tensors import eye_like, sym, trace

from physim.config import check_positive

__all__ = ["PlainMLPPlasticity", "PlainMLPStress"]


class PlainMLPStress(ElasticLawBase, name="nclaw-mlp"):
    """Baseline stress P = 2μ sym(F − I) + λ tr(F − I) I + σ₀ MLP(vec(F − I)/ε₀).

    Args:
        dim: Spatial dimension, 2 or 3.
        width: Hidden units per layer.
        depth: Hidden layers.
        youngs_modulus: Initial Young's modulus E₀ [Pa] of the linear skip; sets σ₀ = E₀ ε₀.
        poisson_ratio: Initial Poisson's ratio ν₀.
        strain_scale: Strain ε₀ that normalises the inputs.
    """

    def __init__(self, *, dim: int = 3, width: int = 64, depth: int = 2, youngs_modulus: float = 1e5,
                 poisson_ratio: float = 0.3, strain_scale: float = 0.05):
        super().__init__()
        check_common(dim, width, depth, strain_scale)
        self._setup_skeleton(dim, youngs_modulus, poisson_ratio, strain_scale)
        self.net = zero_last_mlp(dim * dim, dim * dim, width, depth)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-mlp")
        H = F - eye_like(F)
        mu, lam = self.moduli()
        linear = 2 * mu * sym(H) + lam * trace(H)[..., None, None] * eye_like(F)
        out = self.net(H.flatten(-2) / self.strain_scale).unflatten(-1, (self.dim, self.dim))
        return linear + self.stress_scale * out


class PlainMLPPlasticity(OperatorBase, name="nclaw-mlp-plastic"):
    """Baseline projection F' = F + α MLP(vec(F − I)/ε₀); identity at initialisation (last layer zero).

    Nothing keeps it from amplifying strain, so its output is scaled by a small α per substep
    (as NCLaw's paper does for its plastic network, α = 1e-3); a unit-scale output makes the
    first optimizer step blow the rollout up.
    """

    def __init__(self, *, dim: int = 3, width: int = 64, depth: int = 2, strain_scale: float = 0.05,
                 step_scale: float = 1e-3):
        super().__init__()
        check_common(dim, width, depth, strain_scale)
        check_positive("step_scale", step_scale)
        self.dim = dim
        self.strain_scale = float(strain_scale)
        self.step_scale = float(step_scale)
        self.net = zero_last_mlp(dim * dim, dim * dim, width, depth)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-mlp-plastic")
        H = (F - eye_like(F)).flatten(-2) / self.strain_scale
        return F + self.step_scale * self.net(H).unflatten(-1, (self.dim, self.dim))
