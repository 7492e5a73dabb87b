"""Warp function of the Drucker–Prager return mapping (see `physim.mpm.materials.drucker_prager`)."""

import functools

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_drucker_prager_funcs"]


@functools.cache
def make_drucker_prager_funcs(T: KernelTypes):
    """Return ``project(F, μ, λ, α, c, σ_min) -> F``: Klár et al.'s sand return mapping."""
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    fdim = float(dim)  # float64(dim) would retype the int constant in Warp 1.19
    S = make_svd_funcs(T)
    singular_values, iso_map, pair_limits = S.singular_values, S.iso_map, S.pair_limits
    tiny = 1e-12 if T.float == wp.float64 else 1e-6

    @wp.func
    def project(F: mat, mu: float_t, lam: float_t, alpha: float_t, cohesion: float_t, smin: float_t) -> mat:
        sc, eps, tr = S.log_strain(singular_values(F), smin)
        _mean, dev, nd = S.strain_deviator(eps, tr)
        stiff = float_t(fdim) * lam + float_t(2.0) * mu
        t_apex = float_t(fdim) * cohesion / stiff
        beta = alpha * stiff / (float_t(2.0) * mu)
        dgamma = nd + beta * (tr - t_apex)
        out = F
        if tr > t_apex:
            # Tension beyond the apex: project to the apex (hydrostatic, grains separate).
            h = vec()
            for i in range(dim):
                h[i] = wp.exp(t_apex / float_t(fdim))
            out = iso_map(F, h, vec())
        elif dgamma > float_t(0.0) and nd > float_t(tiny):
            n = dev / nd
            h = vec()
            for i in range(dim):
                h[i] = wp.exp(eps[i] - dgamma * n[i])
            # ∂ε'_i/∂ε_i − ∂ε'_i/∂ε_j = 1 − n_i(n_i − n_j) − (Δγ/‖ε̂‖)(1 − n_i² + n_i n_j).
            c = mat()
            for i in range(dim):
                for j in range(dim):
                    c[i, j] = h[i] / sc[i] * (float_t(1.0) - n[i] * (n[i] - n[j])
                                              - dgamma / nd * (float_t(1.0) - n[i] * n[i] + n[i] * n[j]))
            out = iso_map(F, h, pair_limits(c))
        return out

    return project
