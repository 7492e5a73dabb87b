"""Small batched tensor helpers shared by the NCLaw laws.

Every function takes matrices of shape (..., d, d) and works for d = 2 and d = 3.
The polar decomposition must have a backward that stays finite at repeated singular
values: torch's SVD backward divides by their differences and returns NaN when two
coincide, which is the case for every particle of an undeformed body (F = I). In 3D it
is physim.mpm's `polar` (SVD forward, a backward with sums σ_i + σ_j only); in 2D the
rotation has a closed form, several times cheaper for the small batches of a substep.
"""

from __future__ import annotations

import torch

__all__ = [
    "det",
    "dev",
    "eye_like",
    "plane_strain",
    "polar",
    "smooth_norm",
    "sym",
    "trace",
]

# Smoothing of |x| at 0, in units of the normalised strain Ê = E/ε₀: sqrt(x² + δ²) − δ. A power of
# two, so that sqrt(δ²) − δ is exactly 0 and laws stay exactly zero at F = I. Not much smaller: a
# kink-like curvature at rest (scale δ·ε₀ ≈ 1e-3 strain here) would make the law stiff to
# differentiate and finite differences of it meaningless.
SMOOTH_DELTA = 2.0**-6


def eye_like(F: torch.Tensor) -> torch.Tensor:
    """Identity matrices broadcastable against `F`, shape (d, d)."""
    return torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)


def trace(A: torch.Tensor) -> torch.Tensor:
    """Trace of each matrix, shape (...)."""
    return A.diagonal(dim1=-2, dim2=-1).sum(-1)


def sym(A: torch.Tensor) -> torch.Tensor:
    """Symmetric part (A + Aᵀ)/2."""
    return 0.5 * (A + A.transpose(-1, -2))


def dev(A: torch.Tensor) -> torch.Tensor:
    """Deviatoric part A − tr(A)/d · I."""
    d = A.shape[-1]
    return A - (trace(A) / d)[..., None, None] * eye_like(A)


def smooth_norm(sq: torch.Tensor) -> torch.Tensor:
    """sqrt(sq + δ²) − δ: a norm from its square, smooth at 0 with a bounded derivative, exactly 0 at 0."""
    return torch.sqrt(sq + SMOOTH_DELTA**2) - SMOOTH_DELTA


def det(F: torch.Tensor) -> torch.Tensor:
    """Determinants of 2×2 or 3×3 matrices by their closed form, shape (...).

    torch.linalg.det runs a batched LU factorisation, several times slower for tiny matrices.
    """
    if F.shape[-1] == 2:
        return F[..., 0, 0] * F[..., 1, 1] - F[..., 0, 1] * F[..., 1, 0]
    return (F[..., 0, :] * torch.linalg.cross(F[..., 1, :], F[..., 2, :])).sum(-1)


def _polar2(F: torch.Tensor) -> torch.Tensor:
    # In 2D the rotation has a closed form, smooth wherever F ≠ 0: angle atan2(F₁₀ − F₀₁, F₀₀ + F₁₁).
    theta = torch.atan2(F[..., 1, 0] - F[..., 0, 1], F[..., 0, 0] + F[..., 1, 1])
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([c, -s, s, c], dim=-1).unflatten(-1, (2, 2))


def polar(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Polar decomposition F = R (I + E) with a backward that is finite at repeated singular values.

    Args:
        F: Deformation gradients, shape (..., d, d), d = 2 or 3, det F > 0.

    Returns:
        R: Proper rotations, shape (..., d, d) (for an inverted F, det F < 0, the rotation of
            the signed decomposition, whose stretch then has a negative principal value).
        E: Biot strain U − I of the right stretch U = Rᵀ F (symmetrised), shape (..., d, d);
            exactly zero when F is exactly the identity.
    """
    d = F.shape[-1]
    if d == 2:
        R = _polar2(F)
    elif d == 3:
        from physim.mpm.materials import polar as polar3

        R = polar3(F)
        # Exactly the identity where F is (stress-free at rest must not hang on LAPACK's rounding),
        # while the gradient still flows through the SVD-based factor.
        eye = eye_like(F)
        at_rest = (F == eye).flatten(-2).all(-1)[..., None, None]
        R = R + ((eye - R) * at_rest).detach()
    else:
        raise ValueError(f"polar: F has shape {tuple(F.shape)}; expected (..., 2, 2) or (..., 3, 3)")
    E = sym(R.transpose(-1, -2) @ F) - eye_like(F)
    return R, E


def plane_strain(F: torch.Tensor) -> torch.Tensor:
    """Embed 2D deformation gradients (..., 2, 2) as 3D plane strain (..., 3, 3) with F_zz = 1."""
    out = torch.zeros(*F.shape[:-2], 3, 3, dtype=F.dtype, device=F.device)
    out[..., :2, :2] = F
    out[..., 2, 2] = 1.0
    return out
