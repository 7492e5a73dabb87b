"""Warp functions of the hyperelastic laws (see `physim.mpm.materials.elastic` for the equations)."""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_elastic_funcs"]


@functools.cache
def make_elastic_funcs(T: KernelTypes):
    """Kirchhoff stress functions τ(F, μ, λ): ``corotated, neohookean, stvk, hencky`` (+ σ clamp)."""
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    S = make_svd_funcs(T)
    singular_values, iso_map, polar, pair_limits = S.singular_values, S.iso_map, S.polar, S.pair_limits

    @wp.func
    def identity() -> mat:
        return wp.identity(n=dim, dtype=float_t)

    @wp.func
    def corotated(F: mat, mu: float_t, lam: float_t) -> mat:
        R = polar(F)
        J = wp.determinant(F)
        return float_t(2.0) * mu * (F - R) * wp.transpose(F) + lam * J * (J - float_t(1.0)) * identity()

    @wp.func
    def neohookean(F: mat, mu: float_t, lam: float_t) -> mat:
        J = wp.max(wp.determinant(F), float_t(1e-6))
        return mu * (F * wp.transpose(F) - identity()) + lam * wp.log(J) * identity()

    @wp.func
    def stvk(F: mat, mu: float_t, lam: float_t) -> mat:
        E = float_t(0.5) * (wp.transpose(F) * F - identity())
        S = float_t(2.0) * mu * E + lam * wp.trace(E) * identity()
        return F * S * wp.transpose(F)

    @wp.func
    def hencky(F: mat, mu: float_t, lam: float_t, smin: float_t) -> mat:
        """τ = U diag(2μ ε + λ tr ε) Uᵀ with Hencky strain ε = log σ (σ clamped at `smin`)."""
        s = singular_values(F)
        sc = vec()
        eps = vec()
        for i in range(dim):
            sc[i] = wp.max(s[i], smin)
            eps[i] = wp.log(sc[i])
        tr = float_t(0.0)
        for i in range(dim):
            tr += eps[i]
        h = vec()
        for i in range(dim):
            h[i] = (float_t(2.0) * mu * eps[i] + lam * tr) / sc[i]
        # c[i, j] = ∂h_i/∂σ_i − ∂h_i/∂σ_j gives lim (h_i − h_j)/(σ_i − σ_j) for coincident σ.
        c = mat()
        for i in range(dim):
            for j in range(dim):
                c[i, j] = (float_t(2.0) * mu + lam) / (sc[i] * sc[i]) - h[i] / sc[i] - lam / (sc[i] * sc[j])
        P = iso_map(F, h, pair_limits(c))
        return P * wp.transpose(F)

    return SimpleNamespace(corotated=corotated, neohookean=neohookean, stvk=stvk, hencky=hencky)
