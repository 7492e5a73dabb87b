"""Taped stress and plastic projection of the fluid, von Mises and rigid laws, with hand-written adjoints.

The taped forward kernels compute bitwise the values of the laws' functions (those the untaped
fused kernels call) and store what the adjoint needs: the SVD of F for the von Mises stress
and of the trial F for its return mapping. The adjoints replay neither the law nor the SVD.
Notation: Ḡ the incoming gradient, tr Ḡ its trace, cof F = ∂ det F/∂F, ⟨A, B⟩ = Σ A_ij B_ij,
dev D = D − (tr D/d) I, sym C = ½(C + Cᵀ).

- Newtonian stress τ = a(J) I + 2ηJ dev sym C + ζJ tr(C) I, J = det F, a(J) = K(J − 1) for
  γ = 1 and −JK/γ (J^−γ − 1) otherwise:
  ∂J = a′(J) tr Ḡ + 2η⟨Ḡ, dev sym C⟩ + ζ tr(C) tr Ḡ, ∂F = ∂J cof F,
  ∂C = 2ηJ dev sym Ḡ + ζJ tr(Ḡ) I, ∂K = (∂a/∂K) tr Ḡ, ∂η = 2J⟨Ḡ, dev sym C⟩, ∂ζ = J tr(C) tr Ḡ.
  (∂η and ∂ζ are those of the formula, also at η = 0 or ζ = 0 where the forward skips the
  zero term: the one-sided derivative an optimiser starting from an inviscid fluid needs.)
- Fluid projection F ← J^{1/d} I: ∂F = tr(Ḡ) / (d J^{(d−1)/d}) cof F_trial (zero where J is
  clamped at 1e-6), with J^{1/d} read from the stored output.
- Hencky stress (von Mises), τ = P Fᵀ, P = U diag(h) Vᵀ, h_i = (2μ ε_i + λ tr ε)/σ̂_i,
  ε = log σ̂, σ̂ = max(σ, σ_min): ∂F = Ḡᵀ P + iso(∂P = Ḡ F) + U diag(∂σ) Vᵀ, where iso is the
  adjoint of the isotropic map (`svd_kernels.iso_map_adjoint`, finite for coincident σ) and
  ∂σ_i = (2μ q_i + λ Σq)/σ̂_i − q_i h_i with q_i = ∂h_i/σ̂_i (zero where σ is clamped);
  ∂μ = 2 Σ q_i ε_i, ∂λ = tr ε Σ q_i.
- von Mises return mapping, F ← U diag(exp ε′) Vᵀ with ε′ = m 1 + k n, m = tr ε/d,
  n = ε̂/‖ε̂‖, k = √(2/3) σ_y/(2μ), when ‖ε̂‖ > k (else F unchanged, ∂F = Ḡ):
  ∂ε′ = ∂h ⊙ h, ∂n = k ∂ε′, ∂k = n·∂ε′, ∂ε̂ = (∂n − n (n·∂n))/‖ε̂‖,
  ∂ε = ∂ε̂ + (Σ∂ε′ − Σ∂ε̂)/d 1, ∂σ_i = ∂ε_i/σ̂_i (zero where clamped),
  ∂σ_y = ∂k √(2/3)/(2μ), ∂μ = −∂k k/μ.
- Rigid particles carry no stress (τ = 0, nothing to differentiate); their projection is the
  shape matching of `physim.mpm.rigid_kernels`.

The parameters γ and σ_min reach the table's columns as constants (their columns are not
differentiable parameters); their gradients are not computed.
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.materials import base as mb
from physim.mpm.materials.elastic_kernels import make_elastic_funcs
from physim.mpm.materials.fluid_kernels import make_fluid_funcs
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_taped_material_kernels"]


@functools.cache
def make_taped_material_kernels(T: KernelTypes, laws: frozenset):
    """Kernels ``stress_stored, stress_stored_adjoint, project_stored, project_stored_adjoint``.

    `laws` lists the material codes compiled in. The stress kernels write only the particles of
    `base.STORED_STRESS` (Newtonian, von Mises, rigid); the projection kernels write every particle
    (von Mises and Newtonian projected, the others copied), so they replace the taped
    `project_trial` in scenes without other projecting laws.
    """
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    E = make_elastic_funcs(T)
    fl = make_fluid_funcs(T)
    S = make_svd_funcs(T)
    has_vm = mb.KIND_VON_MISES in laws
    has_newt = mb.KIND_NEWTONIAN in laws
    has_rigid = mb.KIND_RIGID in laws
    LAW_MASK, TORCH_PROJECTION, P0 = mb.LAW_MASK, mb.TORCH_PROJECTION, mb.COL_P0
    fdim = float(dim)
    inv_dim = 1.0 / dim
    sqrt23 = float((2.0 / 3.0) ** 0.5)
    jmin = 1e-6  # the clamp of `fluid_kernels.volumetric`

    # ------------------------------------------------------------------------------- von Mises
    @wp.func
    def hencky_h(s: vec, mu: float_t, lam: float_t, smin: float_t):
        """(σ̂, ε, tr ε, h) of the Hencky stress, computed exactly as `elastic_kernels.hencky`."""
        sc, eps, tr = S.log_strain(s, smin)
        h = vec()
        for i in range(dim):
            h[i] = (float_t(2.0) * mu * eps[i] + lam * tr) / sc[i]
        return sc, eps, tr, h

    @wp.func
    def hencky_svd(F: mat, U: mat, s: vec, V: mat, mu: float_t, lam: float_t, smin: float_t) -> mat:
        _sc, _eps, _tr, h = hencky_h(s, mu, lam, smin)
        return U * wp.diag(h) * wp.transpose(V) * wp.transpose(F)

    @wp.func
    def hencky_adjoint(F: mat, U: mat, s: vec, V: mat, mu: float_t, lam: float_t, smin: float_t, G: mat):
        """(∂F, ∂μ, ∂λ) of the Hencky stress from the stored SVD of F."""
        sc, eps, tr, h = hencky_h(s, mu, lam, smin)
        c = mat()
        for i in range(dim):
            for j in range(dim):
                c[i, j] = (float_t(2.0) * mu + lam) / (sc[i] * sc[i]) - h[i] / sc[i] - lam / (sc[i] * sc[j])
        P = U * wp.diag(h) * wp.transpose(V)
        dF, dh = S.iso_map_adjoint(U, s, V, h, S.pair_limits(c), G * F)
        dF = dF + wp.transpose(G) * P
        q = vec()
        sq = float_t(0.0)
        for i in range(dim):
            q[i] = dh[i] / sc[i]
            sq += q[i]
        ds = vec()
        dmu = float_t(0.0)
        for i in range(dim):
            dmu += float_t(2.0) * q[i] * eps[i]
            if s[i] > smin:
                ds[i] = (float_t(2.0) * mu * q[i] + lam * sq) / sc[i] - q[i] * h[i]
        dF = dF + U * wp.diag(ds) * wp.transpose(V)
        return dF, dmu, tr * sq

    @wp.func
    def vm_state(s: vec, mu: float_t, yield_stress: float_t, smin: float_t):
        """(σ̂, mean, ε̂, ‖ε̂‖, k) of the return mapping, computed exactly as `von_mises_kernels.project`."""
        sc, eps, tr = S.log_strain(s, smin)
        mean, dev, nd = S.strain_deviator(eps, tr)
        k = float_t(sqrt23) * yield_stress / (float_t(2.0) * mu)
        return sc, mean, dev, nd, k

    @wp.func
    def vm_targets(mean: float_t, n: vec, k: float_t) -> vec:
        h = vec()
        for i in range(dim):
            h[i] = wp.exp(mean + k * n[i])
        return h

    @wp.func
    def vm_project_svd(F: mat, U: mat, s: vec, V: mat, mu: float_t, yield_stress: float_t, smin: float_t) -> mat:
        _sc, mean, dev, nd, k = vm_state(s, mu, yield_stress, smin)
        out = F
        if nd > k:
            out = U * wp.diag(vm_targets(mean, dev / nd, k)) * wp.transpose(V)
        return out

    @wp.func
    def vm_project_adjoint(U: mat, s: vec, V: mat, mu: float_t, yield_stress: float_t, smin: float_t, G: mat):
        """(∂F, ∂μ, ∂σ_y) of the return mapping from the stored SVD of the trial F."""
        sc, mean, dev, nd, k = vm_state(s, mu, yield_stress, smin)
        dF = G
        dmu = float_t(0.0)
        dys = float_t(0.0)
        if nd > k:
            n = dev / nd
            h = vm_targets(mean, n, k)
            c = mat()
            for i in range(dim):
                for j in range(dim):
                    c[i, j] = h[i] / sc[i] * (k / nd) * (float_t(1.0) - n[i] * n[i] + n[i] * n[j])
            dF, dh = S.iso_map_adjoint(U, s, V, h, S.pair_limits(c), G)
            de = vec()
            sde = float_t(0.0)
            dk = float_t(0.0)
            for i in range(dim):
                de[i] = dh[i] * h[i]
                sde += de[i]
                dk += n[i] * de[i]
            ndn = k * dk  # n·∂n with ∂n = k ∂ε′
            ddev = vec()
            sdd = float_t(0.0)
            for i in range(dim):
                ddev[i] = (k * de[i] - n[i] * ndn) / nd
                sdd += ddev[i]
            dm = (sde - sdd) / float_t(fdim)
            ds = vec()
            for i in range(dim):
                if s[i] > smin:
                    ds[i] = (ddev[i] + dm) / sc[i]
            dF = dF + U * wp.diag(ds) * wp.transpose(V)
            dys = dk * float_t(sqrt23) / (float_t(2.0) * mu)
            dmu = -dk * k / mu
        return dF, dmu, dys

    # ------------------------------------------------------------------------------- kernels
    @wp.kernel
    def stress_stored(
        F: wp.array(dtype=mat),
        C: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        # outputs
        tau: wp.array(dtype=mat),
        U_out: wp.array(dtype=mat),
        s_out: wp.array(dtype=vec),
        V_out: wp.array(dtype=mat),
    ):
        """Kirchhoff stress of the Newtonian, von Mises and rigid particles (bitwise the fused kernels'
        values); the von Mises SVD of F is stored for `stress_stored_adjoint`."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b] & LAW_MASK
        if wp.static(has_newt):
            if kind == mb.KIND_NEWTONIAN:
                tau[p] = fl.newtonian(F[p], C[p], table[b, P0], table[b, P0 + 1], table[b, P0 + 2], table[b, P0 + 3])
        if wp.static(has_vm):
            if kind == mb.KIND_VON_MISES:
                Fp = F[p]
                U, s, V = S.svd(Fp)
                U_out[p] = U
                s_out[p] = s
                V_out[p] = V
                tau[p] = hencky_svd(Fp, U, s, V, table[b, 1], table[b, 2], table[b, P0 + 1])
        if wp.static(has_rigid):
            if kind == mb.KIND_RIGID:
                tau[p] = mat()

    @wp.kernel
    def stress_stored_adjoint(
        F: wp.array(dtype=mat),
        C: wp.array(dtype=mat),
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
        C_grad: wp.array(dtype=mat),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Hand-written adjoint of `stress_stored` (equations in the module docstring)."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b] & LAW_MASK
        if wp.static(has_newt):
            if kind == mb.KIND_NEWTONIAN:
                Fp = F[p]
                dJ, dC, dK, deta, dzeta = fl.newtonian_adjoint(wp.determinant(Fp), C[p], table[b, P0], table[b, P0 + 1],
                                                               table[b, P0 + 2], table[b, P0 + 3], tau_grad[p])
                F_grad[p] = F_grad[p] + dJ * E.cofactor(Fp)
                C_grad[p] = C_grad[p] + dC
                if table_needs_grad != 0:
                    wp.atomic_add(table_grad, b, P0, dK)
                    wp.atomic_add(table_grad, b, P0 + 1, deta)
                    wp.atomic_add(table_grad, b, P0 + 3, dzeta)
        if wp.static(has_vm):
            if kind == mb.KIND_VON_MISES:
                dF, dmu, dlam = hencky_adjoint(F[p], U_in[p], s_in[p], V_in[p], table[b, 1], table[b, 2],
                                               table[b, P0 + 1], tau_grad[p])
                F_grad[p] = F_grad[p] + dF
                if table_needs_grad != 0:
                    wp.atomic_add(table_grad, b, 1, dmu)
                    wp.atomic_add(table_grad, b, 2, dlam)

    @wp.kernel
    def project_stored(
        F_trial: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        # outputs
        F_out: wp.array(dtype=mat),
        U_out: wp.array(dtype=mat),
        s_out: wp.array(dtype=vec),
        V_out: wp.array(dtype=mat),
        flags: wp.array(dtype=wp.int32),
    ):
        """Plastic projection of the trial F (bitwise `project_trial`'s values); the von Mises SVD of the
        trial F is stored for `project_stored_adjoint`."""
        p = wp.tid()
        Ft = F_trial[p]
        b = body[p]
        kind = kinds[b]
        Fn = Ft
        if (kind & TORCH_PROJECTION) == 0:
            law = kind & LAW_MASK
            if wp.static(has_vm):
                if law == mb.KIND_VON_MISES:
                    U, s, V = S.svd(Ft)
                    U_out[p] = U
                    s_out[p] = s
                    V_out[p] = V
                    Fn = vm_project_svd(Ft, U, s, V, table[b, 1], table[b, P0], table[b, P0 + 1])
            if wp.static(has_newt):
                if law == mb.KIND_NEWTONIAN:
                    Fn = fl.volumetric(Ft)
        F_out[p] = Fn
        if not wp.isfinite(Fn):
            wp.atomic_add(flags, 0, 1)

    @wp.kernel
    def project_stored_adjoint(
        F_trial: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        F_out: wp.array(dtype=mat),
        U_in: wp.array(dtype=mat),
        s_in: wp.array(dtype=vec),
        V_in: wp.array(dtype=mat),
        F_out_grad: wp.array(dtype=mat),
        table_needs_grad: int,
        # outputs (accumulated)
        F_trial_grad: wp.array(dtype=mat),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Hand-written adjoint of `project_stored` (equations in the module docstring)."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b]
        G = F_out_grad[p]
        dF = G
        if (kind & TORCH_PROJECTION) == 0:
            law = kind & LAW_MASK
            if wp.static(has_vm):
                if law == mb.KIND_VON_MISES:
                    dF, dmu, dys = vm_project_adjoint(U_in[p], s_in[p], V_in[p], table[b, 1], table[b, P0],
                                                      table[b, P0 + 1], G)
                    if table_needs_grad != 0:
                        wp.atomic_add(table_grad, b, 1, dmu)
                        wp.atomic_add(table_grad, b, P0, dys)
            if wp.static(has_newt):
                if law == mb.KIND_NEWTONIAN:
                    Ft = F_trial[p]
                    dF = mat()
                    if wp.determinant(Ft) > float_t(jmin):
                        y = F_out[p][0, 0]  # J^{1/d}
                        dJ = wp.trace(G) * float_t(inv_dim) / y
                        if wp.static(dim == 3):
                            dJ = dJ / y
                        dF = dJ * E.cofactor(Ft)
        F_trial_grad[p] = F_trial_grad[p] + dF

    return SimpleNamespace(stress_stored=stress_stored, stress_stored_adjoint=stress_stored_adjoint,
                           project_stored=project_stored, project_stored_adjoint=project_stored_adjoint)
