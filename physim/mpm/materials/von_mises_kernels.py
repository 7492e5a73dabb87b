"""Warp function of the von Mises return mapping (see `physim.mpm.materials.von_mises`)."""

import functools

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_von_mises_funcs"]


@functools.cache
def make_von_mises_funcs(T: KernelTypes):
    """Return ``project(F, μ, σ_y, σ_min) -> F``: the J2 return mapping on the Hencky strain."""
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    S = make_svd_funcs(T)
    singular_values, iso_map, pair_limits = S.singular_values, S.iso_map, S.pair_limits
    sqrt23 = float((2.0 / 3.0) ** 0.5)

    @wp.func
    def project(F: mat, mu: float_t, yield_stress: float_t, smin: float_t) -> mat:
        sc, eps, tr = S.log_strain(singular_values(F), smin)
        mean, dev, nd = S.strain_deviator(eps, tr)
        k = float_t(sqrt23) * yield_stress / (float_t(2.0) * mu)
        out = F
        if nd > k:
            n = dev / nd
            h = vec()
            for i in range(dim):
                h[i] = wp.exp(mean + k * n[i])
            # ∂ε'_i/∂ε_i − ∂ε'_i/∂ε_j = (k/‖ε̂‖)(1 − n_i² + n_i n_j); chain through h = exp(ε'), ε = log σ.
            c = mat()
            for i in range(dim):
                for j in range(dim):
                    c[i, j] = h[i] / sc[i] * (k / nd) * (float_t(1.0) - n[i] * n[i] + n[i] * n[j])
            out = iso_map(F, h, pair_limits(c))
        return out

    return project
