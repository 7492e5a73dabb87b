"""NCLaw's learned plastic projection (return mapping) on the right stretch.

The trial deformation gradient F = R (I + E) is projected to

    F' = F − ε₀ R X(Ê),     X(Ê) = (z · g(z)) I + b(z) Ê + c(z) Ê²,     Ê = E / ε₀,

with g, b, c from an MLP on the invariants z of Ê (the head of the invariant elastic law).
It is rotation-equivariant by construction (F' (Q F) = Q F'(F)) and isotropic, X(0) = 0 so
an undeformed particle stays undeformed, and the last layer starts at zero: an untrained
projection is exactly the identity, in particular everywhere inside the elastic region.
Training learns where flow starts (the yield surface) and where it returns to, e.g.
F → J^{1/d} I for a fluid (z · g = −(J^{1/d} − 1)/ε₀, b = 1) or a von Mises radial return.
"""

from __future__ import annotations

import torch
from physim.operators.base import OperatorBase
from physim.operators.nclaw.invariant import InvariantHead, check_common, check_F, invariants
from physim.operators.nclaw.tensors import polar

__all__ = ["NeuralPlasticity"]


class NeuralPlasticity(OperatorBase, name="nclaw-plastic"):
    """Learned, rotation-equivariant plastic projection F_trial → F (identity at initialisation).

    Args:
        dim: Spatial dimension, 2 or 3.
        width: Hidden units per layer of the coefficient MLP.
        depth: Hidden layers of the coefficient MLP.
        strain_scale: Strain ε₀ that normalises inputs and outputs.

    Call with F_trial of shape (..., dim, dim); returns the projected F, same shape.
    """

    def __init__(self, *, dim: int = 3, width: int = 64, depth: int = 2, strain_scale: float = 0.05):
        super().__init__()
        check_common(dim, width, depth, strain_scale)
        self.dim = dim
        self.strain_scale = float(strain_scale)
        self.head = InvariantHead(width, depth)

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        check_F(F, self.dim, "nclaw-plastic")
        R, E = polar(F)
        E_hat = E / self.strain_scale
        X = self.head(E_hat, invariants(E_hat, torch.linalg.det(F), self.strain_scale))
        return F - self.strain_scale * (R @ X)
