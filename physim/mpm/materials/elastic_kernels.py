"""Warp functions of the hyperelastic laws (see `physim.mpm.materials.elastic` for the equations),
and the taped stress kernel of the elastic laws with its hand-written adjoint.

The adjoints (Ḡ = ∂L/∂τ, cof F = ∂J/∂F, ⟨A, B⟩ = Σ A_ij B_ij):

- fixed corotated, τ = 2μ A Fᵀ + λ J (J − 1) I with A = F − R:
  ∂F = 2μ Ḡᵀ A + 2μ Ḡ F − polarᵀ(2μ Ḡ F) + λ (2J − 1) tr(Ḡ) cof F,
  ∂μ = 2⟨Ḡ, A Fᵀ⟩, ∂λ = J (J − 1) tr Ḡ, where polarᵀ is the adjoint of R = polar(F),
  evaluated from the SVD stored by the taped forward (finite for coincident singular
  values, see `physim.mpm.svd_kernels`);
- neo-Hookean, τ = μ (F Fᵀ − I) + λ log(J) I:
  ∂F = μ (Ḡ + Ḡᵀ) F + λ tr(Ḡ)/J cof F (zero second term where J is clamped),
  ∂μ = ⟨Ḡ, F Fᵀ − I⟩, ∂λ = log(J) tr Ḡ;
- StVK, τ = F S Fᵀ with S = 2μ E + λ tr(E) I, E = ½(FᵀF − I): with S̄ = Fᵀ Ḡ F and
  Ē = 2μ S̄ + λ tr(S̄) I, ∂F = (Ḡ + Ḡᵀ) F S + ½ F (Ē + Ēᵀ), ∂μ = 2⟨S̄, E⟩, ∂λ = tr(E) tr(S̄).

Warp's automatic adjoint of the corotated stress replays the forward (one SVD) and
recomputes the SVD in the polar adjoint: two SVDs per particle and taped substep, which
made it the costliest launch of an elastic scene's backward pass.
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.materials import base as mb
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_elastic_funcs", "make_elastic_stress_kernels"]


@functools.cache
def make_elastic_funcs(T: KernelTypes):
    """Kirchhoff stress functions τ(F, μ, λ): ``corotated, neohookean, stvk, hencky`` (+ σ clamp), and the
    helpers of the hand-written adjoints ``cofactor`` (∂ det F/∂F) and ``inner`` (Σ A_ij B_ij)."""
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    S = make_svd_funcs(T)
    singular_values, iso_map, polar, pair_limits = S.singular_values, S.iso_map, S.polar, S.pair_limits

    @wp.func
    def identity() -> mat:
        return wp.identity(n=dim, dtype=float_t)

    @wp.func
    def corotated_r(F: mat, R: mat, mu: float_t, lam: float_t) -> mat:
        """Fixed corotated τ given the polar rotation R of F."""
        J = wp.determinant(F)
        return float_t(2.0) * mu * (F - R) * wp.transpose(F) + lam * J * (J - float_t(1.0)) * identity()

    @wp.func
    def corotated(F: mat, mu: float_t, lam: float_t) -> mat:
        return corotated_r(F, polar(F), mu, lam)

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
        sc, eps, tr = S.log_strain(singular_values(F), smin)
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

    @wp.func
    def cofactor(F: mat) -> mat:
        """∂ det F / ∂F (finite for singular F, unlike J F⁻ᵀ)."""
        c = mat()
        if wp.static(dim == 3):
            for i in range(3):
                for j in range(3):
                    i1 = (i + 1) % 3
                    i2 = (i + 2) % 3
                    j1 = (j + 1) % 3
                    j2 = (j + 2) % 3
                    c[i, j] = F[i1, j1] * F[i2, j2] - F[i1, j2] * F[i2, j1]
        else:
            c[0, 0] = F[1, 1]
            c[0, 1] = -F[1, 0]
            c[1, 0] = -F[0, 1]
            c[1, 1] = F[0, 0]
        return c

    @wp.func
    def inner(A: mat, B: mat) -> float_t:
        out = float_t(0.0)
        for i in range(dim):
            for j in range(dim):
                out += A[i, j] * B[i, j]
        return out

    return SimpleNamespace(corotated=corotated, corotated_r=corotated_r, neohookean=neohookean, stvk=stvk,
                           hencky=hencky, cofactor=cofactor, inner=inner)


@functools.cache
def make_elastic_stress_kernels(T: KernelTypes, laws: frozenset):
    """Kernels ``stress_elastic`` (taped forward, stores the corotated SVD) and ``stress_elastic_adjoint``.

    `laws` lists the material codes compiled in (only those of `base.ELASTIC_STRESS` matter here).
    Particles of other laws are left alone by both kernels.
    """
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    E = make_elastic_funcs(T)
    S = make_svd_funcs(T)
    has_corot = mb.KIND_COROTATED in laws
    has_neo = mb.KIND_NEOHOOKEAN in laws
    has_stvk = mb.KIND_STVK in laws
    LAW_MASK = mb.LAW_MASK

    @wp.func
    def identity() -> mat:
        return wp.identity(n=dim, dtype=float_t)

    @wp.kernel
    def stress_elastic(
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        # outputs
        tau: wp.array(dtype=mat),
        U_out: wp.array(dtype=mat),
        s_out: wp.array(dtype=vec),
        V_out: wp.array(dtype=mat),
    ):
        """Kirchhoff stress of the elastic particles (bitwise the fused kernels' values); the corotated
        law's SVD is stored for `stress_elastic_adjoint`."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b] & LAW_MASK
        mu = table[b, 1]
        lam = table[b, 2]
        Fp = F[p]
        if wp.static(has_corot):
            if kind == mb.KIND_COROTATED:
                U, s, V = S.svd(Fp)
                U_out[p] = U
                s_out[p] = s
                V_out[p] = V
                tau[p] = E.corotated_r(Fp, S.polar_svd(U, V), mu, lam)
        if wp.static(has_neo):
            if kind == mb.KIND_NEOHOOKEAN:
                tau[p] = E.neohookean(Fp, mu, lam)
        if wp.static(has_stvk):
            if kind == mb.KIND_STVK:
                tau[p] = E.stvk(Fp, mu, lam)

    @wp.kernel
    def stress_elastic_adjoint(
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        U_in: wp.array(dtype=mat),
        s_in: wp.array(dtype=vec),
        V_in: wp.array(dtype=mat),
        tau_grad: wp.array(dtype=mat),
        table_needs_grad: int,
        # outputs (accumulated)
        F_grad: wp.array(dtype=mat),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Hand-written adjoint of `stress_elastic` (no replay of the law, no SVD; equations in the module
        docstring)."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b] & LAW_MASK
        if kind != mb.KIND_COROTATED and kind != mb.KIND_NEOHOOKEAN and kind != mb.KIND_STVK:
            return
        mu = table[b, 1]
        lam = table[b, 2]
        Fp = F[p]
        G = tau_grad[p]
        trG = wp.trace(G)
        dF = mat()
        dmu = float_t(0.0)
        dlam = float_t(0.0)
        if wp.static(has_corot):
            if kind == mb.KIND_COROTATED:
                U = U_in[p]
                V = V_in[p]
                A = Fp - S.polar_svd(U, V)
                J = wp.determinant(Fp)
                dA = float_t(2.0) * mu * (G * Fp)
                dF = float_t(2.0) * mu * (wp.transpose(G) * A) + dA - S.polar_adjoint(U, s_in[p], V, dA)
                dF = dF + (lam * (float_t(2.0) * J - float_t(1.0)) * trG) * E.cofactor(Fp)
                dmu = float_t(2.0) * E.inner(G, A * wp.transpose(Fp))
                dlam = J * (J - float_t(1.0)) * trG
        if wp.static(has_neo):
            if kind == mb.KIND_NEOHOOKEAN:
                det = wp.determinant(Fp)
                J = wp.max(det, float_t(1e-6))
                dF = mu * ((G + wp.transpose(G)) * Fp)
                if det > float_t(1e-6):
                    dF = dF + (lam * trG / J) * E.cofactor(Fp)
                dmu = E.inner(G, Fp * wp.transpose(Fp) - identity())
                dlam = wp.log(J) * trG
        if wp.static(has_stvk):
            if kind == mb.KIND_STVK:
                Em = float_t(0.5) * (wp.transpose(Fp) * Fp - identity())
                Sm = float_t(2.0) * mu * Em + lam * wp.trace(Em) * identity()
                Sb = wp.transpose(Fp) * G * Fp
                Eb = float_t(2.0) * mu * Sb + lam * wp.trace(Sb) * identity()
                dF = (G + wp.transpose(G)) * Fp * Sm + float_t(0.5) * (Fp * (Eb + wp.transpose(Eb)))
                dmu = float_t(2.0) * E.inner(Sb, Em)
                dlam = wp.trace(Em) * wp.trace(Sb)
        F_grad[p] = F_grad[p] + dF
        if table_needs_grad != 0:
            wp.atomic_add(table_grad, b, 1, dmu)
            wp.atomic_add(table_grad, b, 2, dlam)

    return SimpleNamespace(stress_elastic=stress_elastic, stress_elastic_adjoint=stress_elastic_adjoint)
