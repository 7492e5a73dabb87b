"""NCLaw's elastic law built with e3nn: strain as irreps 0e + 2e in, the stress's 0e + 2e out.

The spatial strain e = F Fᵀ − I (left Cauchy–Green minus identity) turns as e → Q e Qᵀ
under a rotation Q of the current configuration, i.e. as a scalar (its trace, 0e) plus a
symmetric traceless tensor (2e). An O(3)-equivariant e3nn network maps these irreps to the
0e and 2e parts of the Kirchhoff stress τ, so τ(Q F) = Q τ(F) Qᵀ and P = τ F⁻ᵀ satisfies
P(Q F) = Q P(F) by construction, without any SVD:

    x = sat([0e, 2e](ε / ε₀))        (sat(x) = x / sqrt(1 + |x|²/16): bounded, equivariant)
    s = x ⊗ x  →  2×0e + 2e           (quadratic invariants and tensor)
    c = s ⊗ x  →  0e + 2e             (cubic)
    h = Gate(Linear([x, s, c])) … (depth times; scalars through SiLU, 2e gated by sigmoids)
    τ = λ tr(ε) I + 2μ ε + σ₀ · [0e, 2e]⁻¹(Linear(h)),   ε = e / 2

Every map is linear without bias, bilinear, or a gate whose gated input vanishes with the
strain, so τ(I) = 0 exactly. The last layer starts at zero: the untrained law is linear
elasticity in ε with (E₀, ν₀). In 2D the law acts on the plane-strain embedding of F.
"""

from __future__ import annotations

import torch
from physim.operators.nclaw.common import ElasticLawBase, check_F, saturate
from physim.operators.nclaw.tensors import eye_like, plane_strain, trace

from physim.config import check_int

__all__ = ["E3nnElasticLaw"]


class E3nnElasticLaw(ElasticLawBase, name="nclaw-e3nn"):
    """Learned elastic law with an e3nn network on the irreps 0e + 2e of the strain (NCLaw variant b).

    Args:
        dim: Spatial dimension, 2 (plane strain) or 3.
        scalars: 0e channels per hidden layer.
        tensors: 2e channels (and as many gates) per hidden layer.
        depth: Gated hidden layers.
        youngs_modulus: Initial Young's modulus E₀ [Pa] of the linear skeleton; sets σ₀ = E₀ ε₀.
        poisson_ratio: Initial Poisson's ratio ν₀.
        strain_scale: Strain ε₀ that normalises the network's inputs.

    Call with F of shape (..., dim, dim); returns the first Piola–Kirchhoff stress P [Pa].
    """

    def __init__(self, *, dim: int = 3, scalars: int = 16, tensors: int = 8, depth: int = 2,
                 youngs_modulus: float = 1e5, poisson_ratio: float = 0.3, strain_scale: float = 0.05):
        super().__init__()
        check_int("scalars", scalars, 1)
        check_int("tensors", tensors, 1)
        check_int("depth", depth, 1)
        self._setup_skeleton(dim, youngs_modulus, poisson_ratio, strain_scale)
        from e3nn import o3
        from e3nn.nn import Gate

        # Orthonormal change of basis from symmetric 3×3 matrices to 1x0e + 1x2e, shape (6, 3, 3).
        basis = o3.ReducedTensorProducts("ij=ji", i="1o").change_of_basis
        self.register_buffer("basis", basis.clone())
        irreps = o3.Irreps("1x0e+1x2e")
        self.square = o3.FullyConnectedTensorProduct(irreps, irreps, "2x0e+1x2e")
        self.cube = o3.FullyConnectedTensorProduct("2x0e+1x2e", irreps, "1x0e+1x2e")
        prev = o3.Irreps("1x0e+1x2e+2x0e+1x2e+1x0e+1x2e")
        layers = []
        for _ in range(depth):
            gate = Gate(f"{scalars}x0e", [torch.nn.functional.silu], f"{tensors}x0e", [torch.sigmoid],
                        f"{tensors}x2e")
            layers += [o3.Linear(prev, gate.irreps_in), gate]
            prev = gate.irreps_out
        self.hidden = torch.nn.Sequential(*layers)
        self.out = o3.Linear(prev, irreps)
        with torch.no_grad():
            self.out.weight.zero_()

    def kirchhoff(self, F: torch.Tensor) -> torch.Tensor:
        """Kirchhoff stress τ [Pa], shape (..., dim, dim)."""
        check_F(F, self.dim, "nclaw-e3nn")
        F3 = plane_strain(F) if self.dim == 2 else F
        eps = 0.5 * (F3 @ F3.transpose(-1, -2) - eye_like(F3))
        x = torch.einsum("kij,...ij->...k", self.basis, eps / self.strain_scale)
        x = saturate(x, (x * x).sum(-1))  # bounded features: the skeleton governs large strains
        s = self.square(x, x)
        h = self.hidden(torch.cat([x, s, self.cube(s, x)], dim=-1))
        tau_hat = torch.einsum("kij,...k->...ij", self.basis, self.out(h))
        mu, lam = self.moduli()
        tau = lam * trace(eps)[..., None, None] * eye_like(eps) + 2 * mu * eps + self.stress_scale * tau_hat
        return tau[..., : self.dim, : self.dim]

    def forward(self, F: torch.Tensor) -> torch.Tensor:
        # P Fᵀ = τ  ⇔  F Pᵀ = τ (τ symmetric).
        return torch.linalg.solve(F, self.kirchhoff(F)).transpose(-1, -2)
