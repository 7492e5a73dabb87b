"""Singular-value functions of a deformation gradient with adjoints that stay finite.

Every SVD-based constitutive operation in physim is an *isotropic matrix function*
G(F) = U diag(h(σ)) Vᵀ of F = U diag(σ) Vᵀ: the polar rotation R (h = 1), the
Hencky stress (h_i = τ_i / σ_i), the plastic return mappings (h = exp(ε_new)). The
textbook SVD adjoint differentiates U and V separately and divides by σ_j² − σ_i²,
which is infinite when two singular values coincide (F = I, a uniaxial stretch).
Here the adjoint is taken of G as a whole. With dP = Uᵀ dF V, the off-diagonal part
of Uᵀ dG V is

    D_ij · ½(dP_ij + dP_ji) + S_ij · ½(dP_ij − dP_ji),
    D_ij = (h_i − h_j)/(σ_i − σ_j),   S_ij = (h_i + h_j)/(σ_i + σ_j),

and its diagonal is dh. D_ij is a divided difference with a finite limit: when σ_i
and σ_j are closer than a relative gap `tol` the caller-supplied limit `dlim`
(computed analytically by each material) replaces it. S_ij is finite for σ > 0.

`singular_values(F)` (adjoint U diag(σ̄) Vᵀ, always finite) and `iso_map(F, h, dlim)`
together differentiate any material written as h(σ, parameters) with Warp's
automatic adjoints: dh flows to σ and to the parameters, the rotation part through
the formula above.
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes

__all__ = ["make_svd_funcs"]


@functools.cache
def make_svd_funcs(T: KernelTypes):
    """Warp functions ``svd, singular_values, iso_map, polar, pair_limits`` for the types `T`, for
    adjoints from a stored SVD ``iso_map_adjoint, polar_svd, polar_adjoint``, and the Hencky strain's
    ``log_strain, strain_deviator``."""
    dim, float_t, vec, mat, tol = T.dim, T.float, T.vec, T.mat, T.tol
    tiny = float_t(1e-12) if T.float == wp.float64 else float_t(1e-6)
    fdim = float(dim)  # float64(dim) would retype the int constant in Warp 1.19

    @wp.func
    def svd(F: mat):
        if wp.static(dim == 3):
            U = mat()
            s = vec()
            V = mat()
            wp.svd3(F, U, s, V)
            return U, s, V
        else:
            U = mat()
            s = vec()
            V = mat()
            wp.svd2(F, U, s, V)
            return U, s, V

    @wp.func
    def singular_values(F: mat) -> vec:
        """Singular values σ of F (the last one negative when det F < 0)."""
        _U, s, _V = svd(F)
        return s

    @wp.func_grad(singular_values)
    def adj_singular_values(F: mat, adj_ret: vec):
        U, _s, V = svd(F)
        wp.adjoint[F] += U * wp.diag(adj_ret) * wp.transpose(V)

    @wp.func
    def iso_map(F: mat, h: vec, dlim: vec) -> mat:
        """U diag(h) Vᵀ where F = U diag(σ) Vᵀ; `dlim` holds lim (h_i − h_j)/(σ_i − σ_j) per pair."""
        U, _s, V = svd(F)
        return U * wp.diag(h) * wp.transpose(V)

    @wp.func
    def pair_term(si: float_t, sj: float_t, hi: float_t, hj: float_t, dl: float_t, sym: float_t, skw: float_t):
        gap = si - sj
        scale = wp.max(float_t(1.0), wp.max(wp.abs(si), wp.abs(sj)))
        d = dl
        if wp.abs(gap) > float_t(tol) * scale:
            d = (hi - hj) / gap
        ssum = si + sj
        if wp.abs(ssum) < tiny:
            ssum = wp.where(ssum < float_t(0.0), -tiny, tiny)
        sk = (hi + hj) / ssum
        return d * sym + sk * skw, d * sym - sk * skw

    @wp.func
    def iso_map_adjoint(U: mat, s: vec, V: mat, h: vec, dlim: vec, adj_ret: mat):
        """(∂F, ∂h) of G = U diag(h) Vᵀ for the incoming ∂G = `adj_ret`, from the SVD F = U diag(s) Vᵀ.

        Shared by Warp's adjoint of `iso_map` (which recomputes the SVD) and the hand-written
        stress adjoints (which read it as stored by their taped forward).
        """
        G = wp.transpose(U) * adj_ret * V
        P = mat()
        gh = vec()
        for i in range(dim):
            gh[i] = G[i, i]
        if wp.static(dim == 3):
            a, b = pair_term(s[0], s[1], h[0], h[1], dlim[0], float_t(0.5) * (G[0, 1] + G[1, 0]),
                             float_t(0.5) * (G[0, 1] - G[1, 0]))
            P[0, 1] = a
            P[1, 0] = b
            a, b = pair_term(s[0], s[2], h[0], h[2], dlim[1], float_t(0.5) * (G[0, 2] + G[2, 0]),
                             float_t(0.5) * (G[0, 2] - G[2, 0]))
            P[0, 2] = a
            P[2, 0] = b
            a, b = pair_term(s[1], s[2], h[1], h[2], dlim[2], float_t(0.5) * (G[1, 2] + G[2, 1]),
                             float_t(0.5) * (G[1, 2] - G[2, 1]))
            P[1, 2] = a
            P[2, 1] = b
        else:
            a, b = pair_term(s[0], s[1], h[0], h[1], dlim[0], float_t(0.5) * (G[0, 1] + G[1, 0]),
                             float_t(0.5) * (G[0, 1] - G[1, 0]))
            P[0, 1] = a
            P[1, 0] = b
        return U * P * wp.transpose(V), gh

    @wp.func_grad(iso_map)
    def adj_iso_map(F: mat, h: vec, dlim: vec, adj_ret: mat):
        U, s, V = svd(F)
        dF, dh = iso_map_adjoint(U, s, V, h, dlim, adj_ret)
        wp.adjoint[h] += dh
        wp.adjoint[F] += dF

    @wp.func
    def polar_svd(U: mat, V: mat) -> mat:
        """R = U Vᵀ from a stored SVD, computed exactly as `polar` does (bitwise the same R)."""
        one = vec()
        for i in range(dim):
            one[i] = float_t(1.0)
        return U * wp.diag(one) * wp.transpose(V)

    @wp.func
    def polar_adjoint(U: mat, s: vec, V: mat, adj_R: mat) -> mat:
        """∂F of R = polar(F) for the incoming ∂R, from a stored SVD (finite for coincident σ)."""
        one = vec()
        for i in range(dim):
            one[i] = float_t(1.0)
        dF, _dh = iso_map_adjoint(U, s, V, one, vec(), adj_R)
        return dF

    @wp.func
    def polar(F: mat) -> mat:
        """Rotation R of the polar decomposition F = R S (R = U Vᵀ, a proper rotation)."""
        one = vec()
        for i in range(dim):
            one[i] = float_t(1.0)
        return iso_map(F, one, vec())

    @wp.func
    def log_strain(s: vec, smin: float_t):
        """(σ̂, ε, tr ε): the singular values clamped at `smin` and the principal Hencky strains ε = log σ̂.

        The one definition shared by the Hencky stress and the von Mises and Drucker–Prager return
        mappings, forward and taped: their adjoints rely on computing these values bit for bit alike.
        """
        sc = vec()
        eps = vec()
        tr = float_t(0.0)
        for i in range(dim):
            sc[i] = wp.max(s[i], smin)
            eps[i] = wp.log(sc[i])
            tr += eps[i]
        return sc, eps, tr

    @wp.func
    def strain_deviator(eps: vec, tr: float_t):
        """(mean ε, deviator ε̂ = ε − mean, ‖ε̂‖) of principal strains: what the return mappings test."""
        mean = tr / float_t(fdim)
        dev = vec()
        for i in range(dim):
            dev[i] = eps[i] - mean
        return mean, dev, wp.length(dev)

    @wp.func
    def pair_limits(c: mat) -> vec:
        """Pair limits for `iso_map` from c[i, j] = ∂h_i/∂σ_i − ∂h_i/∂σ_j (averaged over i, j)."""
        dl = vec()
        if wp.static(dim == 3):
            dl[0] = float_t(0.5) * (c[0, 1] + c[1, 0])
            dl[1] = float_t(0.5) * (c[0, 2] + c[2, 0])
            dl[2] = float_t(0.5) * (c[1, 2] + c[2, 1])
        else:
            dl[0] = float_t(0.5) * (c[0, 1] + c[1, 0])
        return dl

    return SimpleNamespace(svd=svd, singular_values=singular_values, iso_map=iso_map, polar=polar,
                           pair_limits=pair_limits, iso_map_adjoint=iso_map_adjoint, polar_svd=polar_svd,
                           polar_adjoint=polar_adjoint, log_strain=log_strain, strain_deviator=strain_deviator)
