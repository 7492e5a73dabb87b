"""MLS-MPM transfers with APIC (Hu et al. 2018; Jiang et al. 2015): the fused substep kernels.

One substep is three launches:

- `p2g`: per particle, the Kirchhoff stress τ of its material (fused, no stress array),
  then mass and momentum to the 3^d nodes of its quadratic B-spline stencil:
  m_i += w m_p,  (m v)_i += w (m_p v_p + A (x_i − x_p)),  A = m_p C_p − Δt V_p (4/Δx²) τ.
- `grid_update`: v_i = (m v)_i / m_i + Δt g, then the colliders (the most-penetrated
  one acts, with Coulomb friction; its reaction force and torque are accumulated), then
  the domain walls (sticky, slip or separate).
- `g2p`: per particle, v_p = Σ w v_i, C_p = (4/Δx²) Σ w v_i (x_i − x_p)ᵀ, x_p += Δt v_p,
  F_trial = (I + Δt C_p) F_p, then the material's plastic projection (fused).

Without a tape, `g2p` flags the grid blocks of the next substep's grid update (no separate
marking pass over the particles).

The simulator hands the particles over sorted by cell (consecutive particles touch the same
nodes and the particle arrays are read in order); results do not depend on the order up to
floating-point summation order.
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.collider_adjoint_kernels import make_collider_adjoint
from physim.mpm.kernel_types import KernelTypes
from physim.mpm.materials import base as mb
from physim.mpm.materials.drucker_prager_kernels import make_drucker_prager_funcs
from physim.mpm.materials.elastic_kernels import make_elastic_funcs
from physim.mpm.materials.fluid_kernels import make_fluid_funcs
from physim.mpm.materials.von_mises_kernels import make_von_mises_funcs

__all__ = ["BC_SEPARATE", "BC_SLIP", "BC_STICKY", "make_transfer_kernels"]

BC_STICKY, BC_SLIP, BC_SEPARATE = 0, 1, 2
BLOCK = 4  # nodes per axis of an activity block of the grid
COLLIDER_PLANE, COLLIDER_BOX, COLLIDER_SPHERE, COLLIDER_CYLINDER, COLLIDER_CAPSULE, COLLIDER_MESH = range(6)


@functools.cache
def make_transfer_kernels(T: KernelTypes, laws: frozenset, has_mesh: bool, has_colliders: bool = True):
    """Kernels of one variant (p2g, grid_update, g2p, mark_blocks, stress, p2g_stored and its adjoint).

    `laws` lists the material codes compiled in; without colliders their code is left out.
    """
    dim, float_t, vec, mat, vecg, vec3, quat = T.dim, T.float, T.vec, T.mat, T.vecg, T.vec3, T.quat
    E = make_elastic_funcs(T)
    fl = make_fluid_funcs(T)
    vm_project = make_von_mises_funcs(T)
    dp_project = make_drucker_prager_funcs(T)
    has_corot = mb.KIND_COROTATED in laws
    has_neo = mb.KIND_NEOHOOKEAN in laws
    has_stvk = mb.KIND_STVK in laws
    has_vm = mb.KIND_VON_MISES in laws
    has_dp = mb.KIND_DRUCKER_PRAGER in laws
    has_newt = mb.KIND_NEWTONIAN in laws
    has_hb = mb.KIND_HERSCHEL_BULKLEY in laws
    has_neural = mb.KIND_NEURAL in laws
    LAW_MASK, TORCH_PROJECTION = mb.LAW_MASK, mb.TORCH_PROJECTION
    P0 = mb.COL_P0
    tiny = 1e-12 if T.float == wp.float64 else 1e-7
    BLOCK_NODES = BLOCK**dim
    LOWER_Z = 2 if dim == 3 else 1  # block offsets along z whose flags reach a block
    INV_DIM = 1.0 / dim

    @wp.func
    def kirchhoff(kind: int, Fp: mat, Cp: mat, table: wp.array2d(dtype=float_t), b: int, text: mat) -> mat:
        tau = mat()
        mu = table[b, 1]
        lam = table[b, 2]
        if wp.static(has_corot):
            if kind == mb.KIND_COROTATED:
                tau = E.corotated(Fp, mu, lam)
        if wp.static(has_neo):
            if kind == mb.KIND_NEOHOOKEAN:
                tau = E.neohookean(Fp, mu, lam)
        if wp.static(has_stvk):
            if kind == mb.KIND_STVK:
                tau = E.stvk(Fp, mu, lam)
        if wp.static(has_vm):
            if kind == mb.KIND_VON_MISES:
                tau = E.hencky(Fp, mu, lam, table[b, P0 + 1])
        if wp.static(has_dp):
            if kind == mb.KIND_DRUCKER_PRAGER:
                tau = E.hencky(Fp, mu, lam, table[b, P0 + 2])
        if wp.static(has_newt):
            if kind == mb.KIND_NEWTONIAN:
                tau = fl.newtonian(Fp, Cp, table[b, P0], table[b, P0 + 1], table[b, P0 + 2], table[b, P0 + 3])
        if wp.static(has_hb):
            if kind == mb.KIND_HERSCHEL_BULKLEY:
                tau = fl.herschel_bulkley(Fp, Cp, table[b, P0], table[b, P0 + 1], table[b, P0 + 2],
                                          table[b, P0 + 3], table[b, P0 + 4], table[b, P0 + 5], table[b, P0 + 6])
        if wp.static(has_neural):
            if kind == mb.KIND_NEURAL:
                tau = text
        return tau

    @wp.func
    def project(kind: int, Ft: mat, table: wp.array2d(dtype=float_t), b: int) -> mat:
        out = Ft
        if wp.static(has_vm):
            if kind == mb.KIND_VON_MISES:
                out = vm_project(Ft, table[b, 1], table[b, P0], table[b, P0 + 1])
        if wp.static(has_dp):
            if kind == mb.KIND_DRUCKER_PRAGER:
                out = dp_project(Ft, table[b, 1], table[b, 2], table[b, P0], table[b, P0 + 1], table[b, P0 + 2])
        if wp.static(has_newt or has_hb):
            if kind == mb.KIND_NEWTONIAN or kind == mb.KIND_HERSCHEL_BULKLEY:
                out = fl.volumetric(Ft)
        return out

    @wp.func
    def weights(f: float_t) -> vec3:
        """Quadratic B-spline weights of the three nodes base, base+1, base+2 (f = x/Δx − base)."""
        a = float_t(1.5) - f
        b = f - float_t(1.0)
        c = f - float_t(0.5)
        return vec3(float_t(0.5) * a * a, float_t(0.75) - b * b, float_t(0.5) * c * c)

    @wp.func
    def offs(i: int) -> float_t:
        """Node offset i as a float (read from a branch: Warp 1.19 retypes an unrolled loop
        constant once float64() has converted it, so loop counters are never converted)."""
        out = float_t(0.0)
        if i == 1:
            out = float_t(1.0)
        elif i == 2:
            out = float_t(2.0)
        return out

    @wp.func
    def cell_base(xs: float_t, n: wp.int32) -> wp.int32:
        return wp.clamp(wp.int32(wp.floor(xs - float_t(0.5))), wp.int32(0), n - wp.int32(3))

    @wp.func
    def column(A: mat, c: int, dx: float_t) -> vec:
        """dx times column c of A (the momentum change per node step along axis c)."""
        out = vec()
        for r in range(dim):
            out[r] = A[r, c] * dx
        return out

    @wp.func
    def scatter(xp: vec, vp: vec, Cp: mat, m: float_t, Vp: float_t, tau: mat, res: wp.vec3i, inv_dx: float_t,
                dt: float_t, grid: wp.array(dtype=vecg)):
        """Mass and APIC momentum of one particle to its 3^d nodes."""
        dx = float_t(1.0) / inv_dx
        A = (-dt * Vp * float_t(4.0) * inv_dx * inv_dx) * tau + m * Cp
        xs = xp * inv_dx
        mv = m * vp
        # node value = w (m v + A (o − f) dx) = w (q + Σ_c o_c a_c), accumulated axis by axis
        a0 = column(A, 0, dx)
        a1 = column(A, 1, dx)
        if wp.static(dim == 3):
            a2 = column(A, 2, dx)
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            b2 = cell_base(xs[2], res[2])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1), xs[2] - float_t(b2))
            w0 = weights(f[0])
            w1 = weights(f[1])
            w2 = weights(f[2])
            q = mv - A * (f * dx)
            for i in range(3):
                qi = q + offs(i) * a0
                for j in range(3):
                    qij = qi + offs(j) * a1
                    wij = w0[i] * w1[j]
                    row = ((b0 + i) * res[1] + b1 + j) * res[2] + b2
                    qk = qij
                    for k in range(3):
                        w = wij * w2[k]
                        val = w * qk
                        wp.atomic_add(grid, row + k, vecg(val[0], val[1], val[2], w * m))
                        qk = qk + a2
        else:
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1))
            w0 = weights(f[0])
            w1 = weights(f[1])
            q = mv - A * (f * dx)
            for i in range(3):
                qi = q + offs(i) * a0
                row = (b0 + i) * res[1] + b1
                for j in range(3):
                    w = w0[i] * w1[j]
                    val = w * (qi + offs(j) * a1)
                    wp.atomic_add(grid, row + j, vecg(val[0], val[1], w * m))

    @wp.kernel
    def p2g(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        tau_ext: wp.array(dtype=mat),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        p0: int,
        # outputs
        grid: wp.array(dtype=vecg),
    ):
        """Scatter mass and APIC momentum with the fused stress (MLS-MPM); particles p0, p0 + 1, ...
        (a CPU worker's range, see `physim.mpm.threads`)."""
        p = wp.tid() + p0
        b = body[p]
        kind = kinds[b] & LAW_MASK
        Vp = vol[p]
        Cp = C[p]
        text = mat()
        if wp.static(has_neural):
            if kind == mb.KIND_NEURAL:
                text = tau_ext[p]
        tau = kirchhoff(kind, F[p], Cp, table, b, text)
        scatter(x[p], v[p], Cp, table[b, 0] * Vp, Vp, tau, res, inv_dx, dt, grid)

    @wp.kernel
    def stress(
        C: wp.array(dtype=mat),
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        tau_ext: wp.array(dtype=mat),
        # outputs
        tau: wp.array(dtype=mat),
    ):
        """Kirchhoff stress of each particle (the taped substep stores it: the scatter's adjoint then
        does not replay the material, whose adjoint runs once, in this kernel's). The elastic laws are
        left to `stress_elastic` (hand-written adjoint, `materials.elastic_kernels`), the fluid, von Mises
        and rigid ones to `stress_stored` (`materials.taped_kernels`)."""
        p = wp.tid()
        b = body[p]
        kind = kinds[b] & LAW_MASK
        if kind == mb.KIND_COROTATED or kind == mb.KIND_NEOHOOKEAN or kind == mb.KIND_STVK:
            return
        if kind == mb.KIND_NEWTONIAN or kind == mb.KIND_VON_MISES or kind == mb.KIND_RIGID:
            return
        text = mat()
        if wp.static(has_neural):
            if kind == mb.KIND_NEURAL:
                text = tau_ext[p]
        tau[p] = kirchhoff(kind, F[p], C[p], table, b, text)

    @wp.kernel
    def p2g_stored(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        tau: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        # outputs
        grid: wp.array(dtype=vecg),
    ):
        """`p2g` with the stress read from `stress`'s output."""
        p = wp.tid()
        Vp = vol[p]
        scatter(x[p], v[p], C[p], table[body[p], 0] * Vp, Vp, tau[p], res, inv_dx, dt, grid)

    @wp.func
    def dweights(f: float_t) -> vec3:
        """Derivatives of `weights` with respect to f."""
        return vec3(f - float_t(1.5), float_t(2.0) * (float_t(1.0) - f), f - float_t(0.5))

    @wp.func
    def scatter_adjoint(p: int, x: wp.array(dtype=vec), vp: vec, Cp: mat, tp: mat, m: float_t, k: float_t,
                        res: wp.vec3i, inv_dx: float_t, grid_grad: wp.array(dtype=vecg), x_grad: wp.array(dtype=vec),
                        v_grad: wp.array(dtype=vec)):
        """`p2g_stored_adjoint` of particle p (shared with `p2g_fluid_adjoint`) of mass m, velocity vp, affine
        field Cp and stress tp (A = k τ + m C): adds ∂x and ∂v, returns Q and ∂L/∂m."""
        A = k * tp + m * Cp
        dx = float_t(1.0) / inv_dx
        xs = x[p] * inv_dx
        mv = m * vp
        # separable sums, inner axis first (as the scatter): with node offsets o and weights
        # w = Π_c w_c(o_c), S = Σ w G, T_c = Σ w o_c G (so Q = Δx (Σ_c T_c e_cᵀ − S fᵀ)),
        # sm = Σ w g_m, and ∂L/∂f_c = Σ e ∂w/∂f_c with e = G·(q + Σ_c o_c a_c) + g_m m the value
        # per unit weight (q = m v − A f Δx, a_c = Δx A e_c), each partial sum weighted once per axis
        S = vec()
        sm = float_t(0.0)
        gf = vec()  # ∂L/∂f through the weights
        a0 = column(A, 0, dx)
        a1 = column(A, 1, dx)
        f = vec()
        T0 = vec()
        T1 = vec()
        T2 = vec()
        if wp.static(dim == 3):
            a2 = column(A, 2, dx)
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            b2 = cell_base(xs[2], res[2])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1), xs[2] - float_t(b2))
            w0 = weights(f[0])
            w1 = weights(f[1])
            w2 = weights(f[2])
            d0 = dweights(f[0])
            d1 = dweights(f[1])
            d2 = dweights(f[2])
            q = mv - A * (f * dx)
            for i in range(3):
                qi = q + offs(i) * a0
                Si = vec()
                T1i = vec()
                T2i = vec()
                smi = float_t(0.0)
                Ewi = float_t(0.0)  # Σ_j w1 Σ_k w2 e
                Edi = float_t(0.0)  # Σ_j d1 Σ_k w2 e
                Dwi = float_t(0.0)  # Σ_j w1 Σ_k d2 e
                for j in range(3):
                    qij = qi + offs(j) * a1
                    row = ((b0 + i) * res[1] + b1 + j) * res[2] + b2
                    Sj = vec()
                    T2j = vec()
                    smj = float_t(0.0)
                    Ej = float_t(0.0)
                    Dj = float_t(0.0)
                    for kk in range(3):
                        g = grid_grad[row + kk]
                        G = vec(g[0], g[1], g[2])
                        e = wp.dot(G, qij + offs(kk) * a2) + g[3] * m
                        wk = w2[kk]
                        wG = wk * G
                        Sj += wG
                        T2j += offs(kk) * wG
                        smj += wk * g[3]
                        Ej += wk * e
                        Dj += d2[kk] * e
                    wj = w1[j]
                    Si += wj * Sj
                    T1i += (offs(j) * wj) * Sj
                    T2i += wj * T2j
                    smi += wj * smj
                    Ewi += wj * Ej
                    Edi += d1[j] * Ej
                    Dwi += wj * Dj
                wi = w0[i]
                S += wi * Si
                T0 += (offs(i) * wi) * Si
                T1 += wi * T1i
                T2 += wi * T2i
                sm += wi * smi
                gf += vec(d0[i] * Ewi, wi * Edi, wi * Dwi)
        else:
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1))
            w0 = weights(f[0])
            w1 = weights(f[1])
            d0 = dweights(f[0])
            d1 = dweights(f[1])
            q = mv - A * (f * dx)
            for i in range(3):
                qi = q + offs(i) * a0
                row = (b0 + i) * res[1] + b1
                Si = vec()
                T1i = vec()
                smi = float_t(0.0)
                Ei = float_t(0.0)
                Di = float_t(0.0)
                for j in range(3):
                    g = grid_grad[row + j]
                    G = vec(g[0], g[1])
                    e = wp.dot(G, qi + offs(j) * a1) + g[2] * m
                    wj = w1[j]
                    wG = wj * G
                    Si += wG
                    T1i += offs(j) * wG
                    smi += wj * g[2]
                    Ei += wj * e
                    Di += d1[j] * e
                wi = w0[i]
                S += wi * Si
                T0 += (offs(i) * wi) * Si
                T1 += wi * T1i
                sm += wi * smi
                gf += vec(d0[i] * Ei, wi * Di)
        Q = mat()
        for r in range(dim):
            Q[r, 0] = dx * (T0[r] - S[r] * f[0])
            Q[r, 1] = dx * (T1[r] - S[r] * f[1])
            if wp.static(dim == 3):
                Q[r, 2] = dx * (T2[r] - S[r] * f[2])
        # f = x/Δx − base: ∂f/∂x = 1/Δx; the (x_o − x_p) factor adds −Aᵀ S
        x_grad[p] = x_grad[p] + inv_dx * gf - wp.transpose(A) * S
        v_grad[p] = v_grad[p] + m * S
        return Q, wp.dot(S, vp) + sm + wp.ddot(Q, Cp)

    @wp.kernel
    def p2g_stored_adjoint(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        tau: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        grid_grad: wp.array(dtype=vecg),
        table_needs_grad: int,
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        C_grad: wp.array(dtype=mat),
        tau_grad: wp.array(dtype=mat),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Hand-written adjoint of `p2g_stored` (a gather: no atomics on the grid, no replay).

        With node values P_o = w_o (m v + A (x_o − x_p)), M_o = w_o m, A = k τ + m C,
        k = −4 Δt V_p/Δx², and incoming gradients (G_o, g_o): S = Σ w_o G_o,
        Q = Σ w_o G_o (x_o − x_p)ᵀ; then ∂v = m S, ∂A = Q, ∂τ = k Q, ∂C = m Q,
        ∂m = S·v + Σ w_o g_o + Q:C, and ∂x_p = Σ ∇w_o (G_o·P_o/w_o + g_o m) − Aᵀ S.
        """
        p = wp.tid()
        b = body[p]
        Vp = vol[p]
        m = table[b, 0] * Vp
        k = -dt * Vp * float_t(4.0) * inv_dx * inv_dx
        Q, gm = scatter_adjoint(p, x, v[p], C[p], tau[p], m, k, res, inv_dx, grid_grad, x_grad, v_grad)
        C_grad[p] = C_grad[p] + m * Q
        tau_grad[p] = tau_grad[p] + k * Q
        if table_needs_grad != 0:
            wp.atomic_add(table_grad, b, 0, Vp * gm)

    @wp.kernel
    def mark_blocks(x: wp.array(dtype=vec), res: wp.vec3i, nb: wp.vec3i, inv_dx: float_t,
                    marks: wp.array(dtype=wp.int32)):
        """Flag the grid block (BLOCK^d nodes) holding each particle's stencil base node.

        A stencil (3 nodes per axis) reaches into the next block along an axis at most, so the
        blocks touched this substep are the flagged ones dilated by one block upwards per axis.
        """
        p = wp.tid()
        xs = x[p] * inv_dx
        if wp.static(dim == 3):
            i = cell_base(xs[0], res[0]) / BLOCK
            j = cell_base(xs[1], res[1]) / BLOCK
            k = cell_base(xs[2], res[2]) / BLOCK
            marks[(i * nb[1] + j) * nb[2] + k] = 1
        else:
            i = cell_base(xs[0], res[0]) / BLOCK
            j = cell_base(xs[1], res[1]) / BLOCK
            marks[i * nb[1] + j] = 1

    # ---------------------------------------------------------------------------------- colliders
    @wp.func
    def sdf_local(kind: int, p: vec3, prm: vec3, mesh: wp.uint64) -> float_t:
        """Signed distance [m] of a point in the collider frame (negative inside)."""
        d = float_t(1e6)
        if kind == COLLIDER_PLANE:
            d = p[1]
        elif kind == COLLIDER_BOX:
            q = vec3(wp.abs(p[0]) - prm[0], wp.abs(p[1]) - prm[1], wp.abs(p[2]) - prm[2])
            outside = vec3(wp.max(q[0], float_t(0.0)), wp.max(q[1], float_t(0.0)), wp.max(q[2], float_t(0.0)))
            d = wp.length(outside) + wp.min(wp.max(q[0], wp.max(q[1], q[2])), float_t(0.0))
        elif kind == COLLIDER_SPHERE:
            d = wp.length(p) - prm[0]
        elif kind == COLLIDER_CYLINDER:
            r = wp.sqrt(p[0] * p[0] + p[2] * p[2])
            a = r - prm[0]
            c = wp.abs(p[1]) - prm[1]
            d = wp.min(wp.max(a, c), float_t(0.0)) + wp.sqrt(
                wp.max(a, float_t(0.0)) * wp.max(a, float_t(0.0)) + wp.max(c, float_t(0.0)) * wp.max(c, float_t(0.0)))
        elif kind == COLLIDER_CAPSULE:
            y = wp.clamp(p[1], -prm[1], prm[1])
            d = wp.length(vec3(p[0], p[1] - y, p[2])) - prm[0]
        if wp.static(has_mesh):
            if kind == COLLIDER_MESH:
                pf = wp.vec3f(wp.float32(p[0]), wp.float32(p[1]), wp.float32(p[2]))
                qm = wp.mesh_query_point_sign_normal(mesh, pf, wp.float32(1e6))
                if qm.result:
                    cp = wp.mesh_eval_position(mesh, qm.face, qm.u, qm.v)
                    dd = vec3(float_t(pf[0] - cp[0]), float_t(pf[1] - cp[1]), float_t(pf[2] - cp[2]))
                    d = float_t(qm.sign) * wp.length(dd)
        return d

    @wp.func
    def normal_local(kind: int, p: vec3, prm: vec3, mesh: wp.uint64, h: float_t) -> vec3:
        """Outward unit normal (central differences of the SDF, step h)."""
        n = vec3()
        if kind == COLLIDER_PLANE:
            n = vec3(float_t(0.0), float_t(1.0), float_t(0.0))
        else:
            ex = vec3(h, float_t(0.0), float_t(0.0))
            ey = vec3(float_t(0.0), h, float_t(0.0))
            ez = vec3(float_t(0.0), float_t(0.0), h)
            n = vec3(sdf_local(kind, p + ex, prm, mesh) - sdf_local(kind, p - ex, prm, mesh),
                     sdf_local(kind, p + ey, prm, mesh) - sdf_local(kind, p - ey, prm, mesh),
                     sdf_local(kind, p + ez, prm, mesh) - sdf_local(kind, p - ez, prm, mesh))
            ln = wp.length(n)
            if ln > float_t(tiny):
                n = n / ln
            else:
                n = vec3(float_t(0.0), float_t(1.0), float_t(0.0))
        return n

    @wp.func
    def to3(a: vec) -> vec3:
        if wp.static(dim == 3):
            return vec3(a[0], a[1], a[2])
        else:
            return vec3(a[0], a[1], float_t(0.0))

    @wp.func
    def from3(a: vec3) -> vec:
        if wp.static(dim == 3):
            return vec(a[0], a[1], a[2])
        else:
            return vec(a[0], a[1])

    @wp.func
    def deepest(pos: vec3, ncol: int, ctype: wp.array(dtype=wp.int32), cparam: wp.array(dtype=vec3),
                cmesh: wp.array(dtype=wp.uint64), cstate: wp.array3d(dtype=float_t), s: int) -> int:
        """Index of the collider with the most negative SDF at `pos`, or -1 if none contains it."""
        best = int(-1)  # noqa: UP018, RUF046  (int() makes it a runtime variable a dynamic loop may mutate)
        best_d = float_t(0.0) * cstate[s, 0, 0]
        for c in range(ncol):
            cp = vec3(cstate[s, c, 0], cstate[s, c, 1], cstate[s, c, 2])
            cq = quat(cstate[s, c, 3], cstate[s, c, 4], cstate[s, c, 5], cstate[s, c, 6])
            dist = sdf_local(ctype[c], wp.quat_rotate_inv(cq, pos - cp), cparam[c], cmesh[c])
            if dist < best_d:
                best_d = dist
                best = c
        return best

    @wp.func_grad(deepest)
    def deepest_grad(pos: vec3, ncol: int, ctype: wp.array(dtype=wp.int32), cparam: wp.array(dtype=vec3),
                     cmesh: wp.array(dtype=wp.uint64), cstate: wp.array3d(dtype=float_t), s: int, adj_ret: int):
        """No adjoint: the search returns an index (piecewise constant in every input). Warp's generated
        adjoint would replay and differentiate every collider's SDF at every node, for a zero result
        (a third of the grid update's adjoint in the fluid tasks)."""
        pass

    @wp.func
    def wall_mask(I: wp.vec3i, v: vec, res: wp.vec3i, bound: int, bc: int) -> vec:
        """0/1 per velocity component of node I: 0 where a domain wall removes it (sticky: every
        component; slip: the normal one; separate: the normal one when it points into the wall)."""
        keep = vec()
        for d in range(dim):
            keep[d] = float_t(1.0)
        for ax in range(dim):
            lo = I[ax] < bound
            hi = I[ax] >= res[ax] - bound
            if lo or hi:
                if bc == BC_STICKY:
                    keep = vec()
                else:
                    into = (lo and v[ax] < float_t(0.0)) or (hi and v[ax] > float_t(0.0))
                    if bc == BC_SLIP or into:
                        keep[ax] = float_t(0.0)
        return keep

    @wp.func_grad(wall_mask)
    def wall_mask_grad(I: wp.vec3i, v: vec, res: wp.vec3i, bound: int, bc: int, adj_ret: vec):
        """No adjoint: the mask is piecewise constant in v."""
        pass

    @wp.func
    def update_node(
        I: wp.vec3i,
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dx: float_t,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        ncol: int,
        ctype: wp.array(dtype=wp.int32),
        cparam: wp.array(dtype=vec3),
        cmesh: wp.array(dtype=wp.uint64),
        csticky: wp.array(dtype=wp.int32),
        cstate: wp.array3d(dtype=float_t),
        s: int,
        friction: wp.array(dtype=float_t),
        clear: int,
        # outputs
        grid_v: wp.array(dtype=vec),
        force: wp.array(dtype=vec3),
        torque: wp.array(dtype=vec3),
    ):
        """Velocity of grid node I: momentum / mass + gravity, the colliders, the domain walls."""
        node = (I[0] * res[1] + I[1]) * res[2] + I[2]
        g = grid[node]
        if clear != 0:
            grid[node] = vecg()
        m = g[dim]
        v = vec()
        if m > float_t(0.0):
            for d in range(dim):
                v[d] = g[d] / m
            v = v + dt * gravity
            pos = vec3(float_t(I[0]) * dx, float_t(I[1]) * dx, float_t(I[2]) * dx)
            # compiled out of scenes without colliders: its adjoint's locals cost every node
            if wp.static(has_colliders):
                # the most-penetrated collider acts (an index: found without gradients, then applied with them)
                best = deepest(pos, ncol, ctype, cparam, cmesh, cstate, s)
                if best >= 0:
                    c = best
                    cp = vec3(cstate[s, c, 0], cstate[s, c, 1], cstate[s, c, 2])
                    cq = quat(cstate[s, c, 3], cstate[s, c, 4], cstate[s, c, 5], cstate[s, c, 6])
                    cv = vec3(cstate[s, c, 7], cstate[s, c, 8], cstate[s, c, 9])
                    cw = vec3(cstate[s, c, 10], cstate[s, c, 11], cstate[s, c, 12])
                    r = pos - cp
                    n = wp.quat_rotate(cq, normal_local(ctype[c], wp.quat_rotate_inv(cq, r), cparam[c], cmesh[c],
                                                        float_t(0.5) * dx))
                    vc = from3(cv + wp.cross(cw, r))
                    nn = from3(n)
                    vr = v - vc
                    vn = wp.dot(vr, nn)
                    v_new = v
                    if csticky[c] != 0:
                        v_new = vc
                    elif vn < float_t(0.0):
                        vt = vr - vn * nn
                        lt = wp.length(vt)
                        fac = float_t(0.0)
                        if lt > float_t(tiny):
                            fac = wp.max(float_t(0.0), float_t(1.0) + friction[c] * vn / lt)
                        v_new = vc + fac * vt
                    f = to3((m / dt) * (v - v_new))
                    wp.atomic_add(force, c, f)
                    wp.atomic_add(torque, c, wp.cross(r, f))
                    v = v_new
            # domain walls: a 0/1 mask, not `v[ax] = 0`. With colliders Warp differentiates this
            # function, and its adjoint of an in-place component overwrite (without
            # wp.config.enable_vector_component_overwrites) does not clear the overwritten
            # component's adjoint: ∂v leaked through the wall into m v and m, a wrong gradient that
            # grows step after step (NaN over the fluid tasks' full horizons in float32).
            v = wp.cw_mul(v, wall_mask(I, v, res, bound, bc))
        grid_v[node] = v

    @wp.func
    def block_origin(blk: int, nb: wp.vec3i) -> wp.vec3i:
        """First node of activity block `blk` (blocks numbered row-major over the nb block counts)."""
        o = wp.vec3i()
        if wp.static(dim == 3):
            o = wp.vec3i((blk / (nb[1] * nb[2])) * BLOCK, ((blk / nb[2]) % nb[1]) * BLOCK, (blk % nb[2]) * BLOCK)
        else:
            o = wp.vec3i((blk / nb[1]) * BLOCK, (blk % nb[1]) * BLOCK, 0)
        return o

    @wp.func
    def block_offset(loc: int) -> wp.vec3i:
        """Offset of node `loc` (0 ≤ loc < BLOCK^d, row-major) from its block's first node."""
        o = wp.vec3i()
        if wp.static(dim == 3):
            o = wp.vec3i(loc / (BLOCK * BLOCK), (loc / BLOCK) % BLOCK, loc % BLOCK)
        else:
            o = wp.vec3i(loc / BLOCK, loc % BLOCK, 0)
        return o

    @wp.func
    def in_grid(I: wp.vec3i, res: wp.vec3i) -> int:
        """1 if node I lies inside the grid (blocks at the far faces overhang it), else 0."""
        ok = int(1)  # noqa: UP018, RUF046  (a runtime variable, assigned in a branch)
        if I[0] >= res[0] or I[1] >= res[1]:
            ok = 0
        if wp.static(dim == 3):
            if I[2] >= res[2]:
                ok = 0
        return ok

    @wp.func
    def block_node(t: int, blocks: wp.array(dtype=wp.int32), nb: wp.vec3i, res: wp.vec3i) -> wp.vec3i:
        """Coordinates of the node visited by thread t of a launch over listed blocks (-1 if past the grid)."""
        I = block_origin(blocks[t / BLOCK_NODES], nb) + block_offset(t % BLOCK_NODES)
        if in_grid(I, res) == 0:
            I = wp.vec3i(-1, 0, 0)
        return I

    @wp.kernel
    def grid_update(
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dx: float_t,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        ncol: int,
        ctype: wp.array(dtype=wp.int32),
        cparam: wp.array(dtype=vec3),
        cmesh: wp.array(dtype=wp.uint64),
        csticky: wp.array(dtype=wp.int32),
        cstate: wp.array3d(dtype=float_t),
        s: int,
        friction: wp.array(dtype=float_t),
        clear: int,
        blocks: wp.array(dtype=wp.int32),
        nb: wp.vec3i,
        # outputs
        grid_v: wp.array(dtype=vec),
        force: wp.array(dtype=vec3),
        torque: wp.array(dtype=vec3),
    ):
        """Grid velocities, colliders with Coulomb friction (reaction force and torque), domain walls."""
        # one thread per node of the listed blocks; nodes of blocks no particle touches hold no
        # mass and are read by no particle, so they need not be visited
        I = block_node(wp.tid(), blocks, nb, res)
        if I[0] < 0:
            return
        update_node(I, grid, res, dx, dt, gravity, bound, bc, ncol, ctype, cparam, cmesh, csticky, cstate, s,
                    friction, clear, grid_v, force, torque)

    @wp.func
    def update_block(
        o: wp.vec3i,
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dx: float_t,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        ncol: int,
        ctype: wp.array(dtype=wp.int32),
        cparam: wp.array(dtype=vec3),
        cmesh: wp.array(dtype=wp.uint64),
        csticky: wp.array(dtype=wp.int32),
        cstate: wp.array3d(dtype=float_t),
        s: int,
        friction: wp.array(dtype=float_t),
        clear: int,
        copies: int,
        used: int,
        # outputs
        grid_v: wp.array(dtype=vec),
        force: wp.array(dtype=vec3),
        torque: wp.array(dtype=vec3),
    ):
        """`update_node` of the nodes of the block whose first node is o (`copies` > 1: `grid` holds that
        many grids one after the other; each node's copies are summed into the first, in order, and cleared;
        copies c ≥ 1 whose bit c of `used` is 0 hold zeros on this block and are not read)."""
        stride = res[0] * res[1] * res[2]
        for loc in range(BLOCK_NODES):
            I = o + block_offset(loc)
            if in_grid(I, res) != 0:
                if copies > 1:
                    node = (I[0] * res[1] + I[1]) * res[2] + I[2]
                    g = grid[node]
                    for c in range(1, copies):
                        if ((used >> c) & 1) != 0:
                            g += grid[node + c * stride]
                            grid[node + c * stride] = vecg()
                    grid[node] = g
                update_node(I, grid, res, dx, dt, gravity, bound, bc, ncol, ctype, cparam, cmesh, csticky, cstate, s,
                            friction, clear, grid_v, force, torque)

    @wp.kernel
    def grid_update_blocks(
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dx: float_t,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        ncol: int,
        ctype: wp.array(dtype=wp.int32),
        cparam: wp.array(dtype=vec3),
        cmesh: wp.array(dtype=wp.uint64),
        csticky: wp.array(dtype=wp.int32),
        cstate: wp.array3d(dtype=float_t),
        s: int,
        friction: wp.array(dtype=float_t),
        clear: int,
        blocks: wp.array(dtype=wp.int32),
        nb: wp.vec3i,
        b0: int,
        copies: int,
        # outputs
        grid_v: wp.array(dtype=vec),
        force: wp.array(dtype=vec3),
        torque: wp.array(dtype=vec3),
    ):
        """`grid_update` with one thread per listed block (untaped CPU substeps): the block's position is
        decoded once for its BLOCK^d nodes (the integer divisions by the block counts cost more than a
        collider-free node's update). Blocks b0, b0 + 1, ... of the list (a CPU worker's range).

        `copies` > 1: `grid` holds that many grids one after the other (the scatters of several CPU
        workers); each node's copies are summed into the first, in order, and cleared."""
        update_block(block_origin(blocks[wp.tid() + b0], nb), grid, res, dx, dt, gravity, bound, bc, ncol, ctype,
                     cparam, cmesh, csticky, cstate, s, friction, clear, copies, -1, grid_v, force, torque)

    @wp.func
    def block_rows(bi: int, bj: int, bk: int, marks: wp.array(dtype=wp.int32), rows: int, nb: wp.vec3i) -> int:
        """Bit r set if a particle of flag row r reaches block (bi, bj, bk): the row flags the block itself
        or a block one lower along any set of axes (a stencil reaches one block up per axis)."""
        blocks = nb[0] * nb[1] * nb[2]
        used = int(0)  # noqa: UP018, RUF046  (a runtime variable, assigned in a branch)
        for a in range(2):
            for b in range(2):
                for c in range(LOWER_Z):
                    i = bi - a
                    j = bj - b
                    k = bk - c
                    if i >= 0 and j >= 0 and k >= 0:
                        blk = (i * nb[1] + j) * nb[2] + k
                        for r in range(rows):
                            if marks[r * blocks + blk] != 0:
                                used = used | (1 << r)
        return used

    @wp.func
    def owns(used: int, w: int) -> int:
        """1 if w is the lowest set bit of `used`."""
        out = int(0)  # noqa: UP018, RUF046  (a runtime variable, assigned in a branch)
        if (used & (-used)) == (1 << w):
            out = 1
        return out

    @wp.kernel
    def grid_update_marked(
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dx: float_t,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        ncol: int,
        ctype: wp.array(dtype=wp.int32),
        cparam: wp.array(dtype=vec3),
        cmesh: wp.array(dtype=wp.uint64),
        csticky: wp.array(dtype=wp.int32),
        cstate: wp.array3d(dtype=float_t),
        s: int,
        friction: wp.array(dtype=float_t),
        marks: wp.array(dtype=wp.int32),
        rows: int,
        nb: wp.vec3i,
        w: int,
        # outputs
        grid_v: wp.array(dtype=vec),
        force: wp.array(dtype=vec3),
        torque: wp.array(dtype=vec3),
    ):
        """`grid_update_blocks` of CPU worker w of a threaded untaped substep, which finds its blocks itself:
        thread t scans the column of blocks t (3D: the blocks (i, j, ·); 2D: (i, ·)) and updates the blocks
        whose lowest flag row reaching them (`block_rows`; row r: the particles of worker r) is w's. A
        worker so updates the blocks its own particles scattered into, in its own cache (blocks reached
        by several workers' particles go to the lowest), with no block list compacted on the host
        between the phases. `grid` holds one copy per row; a node's copies are summed in order (those of
        rows not reaching the block hold zeros there and are skipped) and cleared."""
        col = wp.tid()
        if wp.static(dim == 3):
            bi = col / nb[1]
            bj = col % nb[1]
            for bk in range(nb[2]):
                used = block_rows(bi, bj, bk, marks, rows, nb)
                if owns(used, w) != 0:
                    update_block(wp.vec3i(bi * BLOCK, bj * BLOCK, bk * BLOCK), grid, res, dx, dt, gravity, bound, bc,
                                 ncol, ctype, cparam, cmesh, csticky, cstate, s, friction, 1, rows, used, grid_v, force,
                                 torque)
        else:
            for bj in range(nb[1]):
                used = block_rows(col, bj, 0, marks, rows, nb)
                if owns(used, w) != 0:
                    update_block(wp.vec3i(col * BLOCK, bj * BLOCK, 0), grid, res, dx, dt, gravity, bound, bc, ncol,
                                 ctype, cparam, cmesh, csticky, cstate, s, friction, 1, rows, used, grid_v, force,
                                 torque)

    @wp.func
    def adjoint_node(
        I: wp.vec3i,
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        grid_v_grad: wp.array(dtype=vec),
        grid_grad: wp.array(dtype=vecg),
    ):
        """Hand-written adjoint of `update_node` at node I in a scene without colliders.

        v = (m v)/m + Δt g, then the walls zero some components (a 0/1 mask M replayed from the
        forward values): ∂(m v) = M ∂v / m, ∂m = −(M ∂v)·((m v)/m) / m.
        """
        node = (I[0] * res[1] + I[1]) * res[2] + I[2]
        g = grid[node]
        m = g[dim]
        gv = grid_v_grad[node]
        # the buffers are shared by the substeps of a step: leave ∂v zero for the previous substep's
        # g2p adjoint, and overwrite ∂(grid) (this is its only writer; the scatter's adjoint reads
        # only nodes of the listed blocks), so that neither needs a zero fill
        grid_v_grad[node] = vec()
        out = vecg()
        if m > float_t(0.0):
            u = vec()  # (m v)/m
            for d in range(dim):
                u[d] = g[d] / m
            gv = wp.cw_mul(gv, wall_mask(I, u + dt * gravity, res, bound, bc))
            for d in range(dim):
                out[d] = gv[d] / m
            out[dim] = -wp.dot(gv, u) / m
        grid_grad[node] = out

    @wp.kernel
    def grid_update_adjoint(
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        blocks: wp.array(dtype=wp.int32),
        nb: wp.vec3i,
        grid_v_grad: wp.array(dtype=vec),
        # outputs (overwritten; grid_v_grad is read, then zeroed)
        grid_grad: wp.array(dtype=vecg),
    ):
        """Hand-written adjoint of `grid_update` in a scene without colliders (one thread per node)."""
        I = block_node(wp.tid(), blocks, nb, res)
        if I[0] < 0:
            return
        adjoint_node(I, grid, res, dt, gravity, bound, bc, grid_v_grad, grid_grad)

    @wp.kernel
    def grid_update_adjoint_blocks(
        grid: wp.array(dtype=vecg),
        res: wp.vec3i,
        dt: float_t,
        gravity: vec,
        bound: int,
        bc: int,
        blocks: wp.array(dtype=wp.int32),
        nb: wp.vec3i,
        grid_v_grad: wp.array(dtype=vec),
        # outputs (overwritten; grid_v_grad is read, then zeroed)
        grid_grad: wp.array(dtype=vecg),
    ):
        """`grid_update_adjoint` with one thread per listed block (CPU; as `grid_update_blocks`)."""
        o = block_origin(blocks[wp.tid()], nb)
        for loc in range(BLOCK_NODES):
            I = o + block_offset(loc)
            if in_grid(I, res) != 0:
                adjoint_node(I, grid, res, dt, gravity, bound, bc, grid_v_grad, grid_grad)

    @wp.func
    def gather_row(grid_v: wp.array(dtype=vec), row: int, w: float_t, w2: vec3):
        """Weighted velocities of the three nodes row, row + 1, row + 2 (weights w·w2[k]): their sum and
        the k = 1 and k = 2 terms."""
        a0 = (w * w2[0]) * grid_v[row]
        a1 = (w * w2[1]) * grid_v[row + 1]
        a2 = (w * w2[2]) * grid_v[row + 2]
        return (a0 + a1) + a2, a1, a2

    @wp.func
    def apic_gather(xp: vec, grid_v: wp.array(dtype=vec), res: wp.vec3i, inv_dx: float_t):
        """APIC velocity v_p = Σ w v_i and affine field C_p = (4/Δx²) Σ w v_i (x_i − x_p)ᵀ of one particle
        (the untaped form: the stencil sums hoisted per axis)."""
        xs = xp * inv_dx
        dx = float_t(1.0) / inv_dx
        vp = vec()
        # B = Σ w v_i (o − f)ᵀ dx = dx (Σ_c (Σ w v_i o_c) e_cᵀ − v_p fᵀ): accumulate Σ w v_i o_c per axis
        s0 = vec()
        s1 = vec()
        f = vec()
        B = mat()
        if wp.static(dim == 3):
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            b2 = cell_base(xs[2], res[2])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1), xs[2] - float_t(b2))
            w0 = weights(f[0])
            w1 = weights(f[1])
            w2 = weights(f[2])
            t1 = vec()
            t2 = vec()
            for i in range(3):
                for j in range(3):
                    wij = w0[i] * w1[j]
                    row = ((b0 + i) * res[1] + b1 + j) * res[2] + b2
                    a0 = (wij * w2[0]) * grid_v[row]
                    a1 = (wij * w2[1]) * grid_v[row + 1]
                    a2 = (wij * w2[2]) * grid_v[row + 2]
                    t1 += a1
                    t2 += a2
                    sj = a0 + a1 + a2
                    vp += sj
                    s0 += offs(i) * sj
                    s1 += offs(j) * sj
            s2 = t1 + float_t(2.0) * t2
            for r in range(3):
                B[r, 0] = s0[r]
                B[r, 1] = s1[r]
                B[r, 2] = s2[r]
        else:
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1))
            w0 = weights(f[0])
            w1 = weights(f[1])
            for i in range(3):
                row = (b0 + i) * res[1] + b1
                si = vec()
                for j in range(3):
                    wv = (w0[i] * w1[j]) * grid_v[row + j]
                    si += wv
                    s1 += offs(j) * wv
                vp += si
                s0 += offs(i) * si
            for r in range(2):
                B[r, 0] = s0[r]
                B[r, 1] = s1[r]
        B = dx * (B - wp.outer(vp, f))
        return vp, (float_t(4.0) * inv_dx * inv_dx) * B

    @wp.func
    def check_and_mark(tot: float_t, xn: vec, res: wp.vec3i, inv_dx: float_t, nb: wp.vec3i,
                       flags: wp.array(dtype=wp.int32), marks: wp.array(dtype=wp.int32)) -> int:
        """Divergence bookkeeping of a particle's new state (`tot`: the sum of its entries) and the grid
        block flag of its new position for the next substep (as `mark_blocks` does). Returns 1 if finite.

        One test of the sum: a NaN or inf in any entry makes it non-finite (finite entries overflow
        it only beyond 1e38, a diverged particle anyway); 15 separate tests cost 10 % of g2p."""
        ok = int(0)  # noqa: UP018, RUF046  (a runtime variable, assigned in a branch)
        if not wp.isfinite(tot):
            wp.atomic_add(flags, 0, 1)
        else:
            ok = 1
            xg = xn * inv_dx
            for d in range(dim):
                if xg[d] < float_t(0.5) or xg[d] > float_t(res[d]) - float_t(1.5):
                    wp.atomic_add(flags, 1, 1)
            if wp.static(dim == 3):
                bi = cell_base(xg[0], res[0]) / BLOCK
                bj = cell_base(xg[1], res[1]) / BLOCK
                bk = cell_base(xg[2], res[2]) / BLOCK
                marks[(bi * nb[1] + bj) * nb[2] + bk] = 1
            else:
                bi = cell_base(xg[0], res[0]) / BLOCK
                bj = cell_base(xg[1], res[1]) / BLOCK
                marks[bi * nb[1] + bj] = 1
        return ok

    @wp.func
    def advance(
        p: int,
        x: wp.array(dtype=vec),
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        nb: wp.vec3i,
        # outputs
        x_out: wp.array(dtype=vec),
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        F_out: wp.array(dtype=mat),
        flags: wp.array(dtype=wp.int32),
        marks: wp.array(dtype=wp.int32),
    ) -> int:
        """Gather APIC velocity and affine field, advect, update F and project it (plasticity);
        flag the grid block of the new position for the next substep.
        Returns 1 if the new state is finite, else 0."""
        vp, Cn = apic_gather(x[p], grid_v, res, inv_dx)
        xn = x[p] + dt * vp
        Ft = (wp.identity(n=dim, dtype=float_t) + dt * Cn) * F[p]
        b = body[p]
        kind = kinds[b]
        Fn = Ft
        if (kind & TORCH_PROJECTION) == 0:
            Fn = project(kind & LAW_MASK, Ft, table, b)
        x_out[p] = xn
        v_out[p] = vp
        C_out[p] = Cn
        F_out[p] = Fn
        tot = float_t(0.0)
        for r in range(dim):
            tot += xn[r] + vp[r]
            for c in range(dim):
                tot += Fn[r, c]
        return check_and_mark(tot, xn, res, inv_dx, nb, flags, marks)

    @wp.kernel
    def g2p(
        x: wp.array(dtype=vec),
        F: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        nb: wp.vec3i,
        p0: int,
        # outputs
        x_out: wp.array(dtype=vec),
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        F_out: wp.array(dtype=mat),
        flags: wp.array(dtype=wp.int32),
        marks: wp.array(dtype=wp.int32),
    ):
        """Grid-to-particle transfer of one substep (`advance`) of particles p0, p0 + 1, ..."""
        advance(wp.tid() + p0, x, F, body, kinds, table, grid_v, res, inv_dx, dt, nb, x_out, v_out, C_out, F_out, flags,
                marks)

    # ------------------------------------------------------------------- fluid-only scenes, untaped
    # A fluid's stress and plastic projection depend on J = det F only, and det((I + Δt C) F) =
    # det(I + Δt C) J: the untaped substeps of a scene of fluids carry the scalar J instead of F
    # (4 bytes instead of d² floats per particle read and written, no matrix product, no root per
    # substep); F = J^{1/d} I is formed once, when the particles leave the operation.
    @wp.kernel
    def p2g_fluid(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        J: wp.array(dtype=float_t),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        p0: int,
        # outputs
        grid: wp.array(dtype=vecg),
    ):
        """`p2g` of a fluid-only scene, from the particles' J (particles p0, p0 + 1, ...)."""
        p = wp.tid() + p0
        b = body[p]
        Vp = vol[p]
        Cp = C[p]
        tau = kirchhoff(kinds[b] & LAW_MASK, fl.with_det(J[p]), Cp, table, b, mat())
        scatter(x[p], v[p], Cp, table[b, 0] * Vp, Vp, tau, res, inv_dx, dt, grid)

    @wp.kernel
    def g2p_fluid(
        x: wp.array(dtype=vec),
        J: wp.array(dtype=float_t),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        nb: wp.vec3i,
        p0: int,
        # outputs
        x_out: wp.array(dtype=vec),
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        J_out: wp.array(dtype=float_t),
        flags: wp.array(dtype=wp.int32),
        marks: wp.array(dtype=wp.int32),
    ):
        """`g2p` of a fluid-only scene: J ← max(det(I + Δt C) J, 10⁻⁶) (the projection `volumetric` keeps),
        particles p0, p0 + 1, ..."""
        p = wp.tid() + p0
        vp, Cn = apic_gather(x[p], grid_v, res, inv_dx)
        xn = x[p] + dt * vp
        Jn = wp.max(wp.determinant(wp.identity(n=dim, dtype=float_t) + dt * Cn) * J[p], float_t(1e-6))
        x_out[p] = xn
        v_out[p] = vp
        C_out[p] = Cn
        J_out[p] = Jn
        tot = Jn
        for r in range(dim):
            tot += xn[r] + vp[r]
        check_and_mark(tot, xn, res, inv_dx, nb, flags, marks)

    @wp.func
    def gather(xp: vec, grid_v: wp.array(dtype=vec), res: wp.vec3i, inv_dx: float_t):
        """APIC gather of one particle: velocity v_p = Σ w v_i and affine field C_p = (4/Δx²) Σ w v_i (x_i − x_p)ᵀ."""
        xs = xp * inv_dx
        vp = vec()
        B = mat()
        if wp.static(dim == 3):
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            b2 = cell_base(xs[2], res[2])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1), xs[2] - float_t(b2))
            w0 = weights(f[0])
            w1 = weights(f[1])
            w2 = weights(f[2])
            for i in range(3):
                for j in range(3):
                    row = ((b0 + i) * res[1] + b1 + j) * res[2] + b2
                    for k in range(3):
                        wv = (w0[i] * w1[j] * w2[k]) * grid_v[row + k]
                        vp += wv
                        B += wp.outer(wv, vec(offs(i) - f[0], offs(j) - f[1], offs(k) - f[2]))
        else:
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1))
            w0 = weights(f[0])
            w1 = weights(f[1])
            for i in range(3):
                row = (b0 + i) * res[1] + b1
                for j in range(3):
                    wv = (w0[i] * w1[j]) * grid_v[row + j]
                    vp += wv
                    B += wp.outer(wv, vec(offs(i) - f[0], offs(j) - f[1]))
        return vp, (float_t(4.0) * inv_dx) * B

    @wp.kernel
    def g2p_stored(
        x: wp.array(dtype=vec),
        F: wp.array(dtype=mat),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        check_f: int,
        # outputs
        x_out: wp.array(dtype=vec),
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        F_trial: wp.array(dtype=mat),
        flags: wp.array(dtype=wp.int32),
    ):
        """`g2p` of a taped substep up to the trial F (the projection is `project_trial`, which checks the
        new F; `check_f`: check the trial F here, in scenes without a projecting law)."""
        p = wp.tid()
        vp, Cn = gather(x[p], grid_v, res, inv_dx)
        xn = x[p] + dt * vp
        x_out[p] = xn
        v_out[p] = vp
        C_out[p] = Cn
        Ft = (wp.identity(n=dim, dtype=float_t) + dt * Cn) * F[p]
        F_trial[p] = Ft
        finite = wp.isfinite(xn) and wp.isfinite(vp)
        if check_f != 0:
            finite = finite and wp.isfinite(Ft)
        if not finite:
            wp.atomic_add(flags, 0, 1)
        else:
            xg = xn * inv_dx
            for d in range(dim):
                if xg[d] < float_t(0.5) or xg[d] > float_t(res[d]) - float_t(1.5):
                    wp.atomic_add(flags, 1, 1)

    @wp.kernel
    def project_trial(
        F_trial: wp.array(dtype=mat),
        body: wp.array(dtype=wp.int32),
        kinds: wp.array(dtype=wp.int32),
        table: wp.array2d(dtype=float_t),
        # outputs
        F_out: wp.array(dtype=mat),
        flags: wp.array(dtype=wp.int32),
    ):
        """Plastic projection of the trial F (taped substeps; Warp's adjoint)."""
        p = wp.tid()
        Ft = F_trial[p]
        b = body[p]
        kind = kinds[b]
        Fn = Ft
        if (kind & TORCH_PROJECTION) == 0:
            Fn = project(kind & LAW_MASK, Ft, table, b)
        F_out[p] = Fn
        if not wp.isfinite(Fn):
            wp.atomic_add(flags, 0, 1)

    @wp.func
    def gather_adjoint(p: int, x: wp.array(dtype=vec), vp: vec, gB: mat, gvn: vec, gxn: vec, dt: float_t,
                       grid_v: wp.array(dtype=vec), res: wp.vec3i, inv_dx: float_t, grid_v_grad: wp.array(dtype=vec),
                       x_grad: wp.array(dtype=vec)):
        """`g2p_stored_adjoint` of particle p (shared with `g2p_fluid_adjoint`) given ∂B and the gradients of its
        new velocity and position: node i receives w_i (a + ∂B r_i) in `grid_v_grad`, a = ∂v + Δt ∂x_new;
        adds ∂x_p."""
        a = gvn + dt * gxn
        dx = float_t(1.0) / inv_dx
        xs = x[p] * inv_dx
        gf = vec()
        if wp.static(dim == 3):
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            b2 = cell_base(xs[2], res[2])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1), xs[2] - float_t(b2))
            w0 = weights(f[0])
            w1 = weights(f[1])
            w2 = weights(f[2])
            d0 = dweights(f[0])
            d1 = dweights(f[1])
            d2 = dweights(f[2])
            # a + ∂B r_i = α + Σ_c o_c β_c (α = a − ∂B f Δx, β_c = Δx ∂B e_c), built axis by axis;
            # ∂L/∂f_c = Σ e ∂w/∂f_c summed inner axis first
            al = a - gB * (f * dx)
            be0 = column(gB, 0, dx)
            be1 = column(gB, 1, dx)
            be2 = column(gB, 2, dx)
            for i in range(3):
                ai = al + offs(i) * be0
                Ewi = float_t(0.0)
                Edi = float_t(0.0)
                Dwi = float_t(0.0)
                for j in range(3):
                    aij = ai + offs(j) * be1
                    wij = w0[i] * w1[j]
                    row = ((b0 + i) * res[1] + b1 + j) * res[2] + b2
                    Ej = float_t(0.0)
                    Dj = float_t(0.0)
                    for k in range(3):
                        an = aij + offs(k) * be2
                        wp.atomic_add(grid_v_grad, row + k, (wij * w2[k]) * an)
                        e = wp.dot(grid_v[row + k], an)
                        Ej += w2[k] * e
                        Dj += d2[k] * e
                    Ewi += w1[j] * Ej
                    Edi += d1[j] * Ej
                    Dwi += w1[j] * Dj
                gf += vec(d0[i] * Ewi, w0[i] * Edi, w0[i] * Dwi)
        else:
            b0 = cell_base(xs[0], res[0])
            b1 = cell_base(xs[1], res[1])
            f = vec(xs[0] - float_t(b0), xs[1] - float_t(b1))
            w0 = weights(f[0])
            w1 = weights(f[1])
            d0 = dweights(f[0])
            d1 = dweights(f[1])
            al = a - gB * (f * dx)
            be0 = column(gB, 0, dx)
            be1 = column(gB, 1, dx)
            for i in range(3):
                ai = al + offs(i) * be0
                row = (b0 + i) * res[1] + b1
                Ei = float_t(0.0)
                Di = float_t(0.0)
                for j in range(3):
                    an = ai + offs(j) * be1
                    wp.atomic_add(grid_v_grad, row + j, (w0[i] * w1[j]) * an)
                    e = wp.dot(grid_v[row + j], an)
                    Ei += w1[j] * e
                    Di += d1[j] * e
                gf += vec(d0[i] * Ei, w0[i] * Di)
        x_grad[p] = x_grad[p] + gxn - wp.transpose(gB) * vp + inv_dx * gf

    @wp.kernel
    def g2p_stored_adjoint(
        x: wp.array(dtype=vec),
        F: wp.array(dtype=mat),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        gx_out: wp.array(dtype=vec),
        gv_out: wp.array(dtype=vec),
        gC_out: wp.array(dtype=mat),
        gF_trial: wp.array(dtype=mat),
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        F_grad: wp.array(dtype=mat),
        grid_v_grad: wp.array(dtype=vec),
    ):
        """Hand-written adjoint of `g2p_stored` (reads its stored v_p and C_p: no replay of the gather).

        With r_i = x_i − x_p, B = (Δx²/4) C_p and incoming gradients: ∂F = (I + Δt C)ᵀ ∂F_t,
        ∂B = (4/Δx²)(∂C + Δt ∂F_t Fᵀ), a = ∂v + Δt ∂x_new; node i receives w_i (a + ∂B r_i), and
        ∂x_p = ∂x_new − ∂Bᵀ v_p + Σ ∇w_i v_i·(a + ∂B r_i).
        """
        p = wp.tid()
        Cn = C_out[p]
        vp = v_out[p]
        gFt = gF_trial[p]
        gxn = gx_out[p]
        Fp = F[p]
        F_grad[p] = F_grad[p] + wp.transpose(wp.identity(n=dim, dtype=float_t) + dt * Cn) * gFt
        gB = (float_t(4.0) * inv_dx * inv_dx) * (gC_out[p] + dt * gFt * wp.transpose(Fp))
        gather_adjoint(p, x, vp, gB, gv_out[p], gxn, dt, grid_v, res, inv_dx, grid_v_grad, x_grad)

    # ---------------------------------------------------------- fluid-only scenes, taped (Newtonian)
    # The taped substeps of a scene of Newtonian fluids run `p2g_fluid` and `g2p_fluid` themselves
    # (the untaped kernels: the same values bitwise) and these adjoints: no F, no stored stress,
    # no separate projection.
    @wp.kernel
    def p2g_fluid_adjoint(
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        J: wp.array(dtype=float_t),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        grid_grad: wp.array(dtype=vecg),
        table_needs_grad: int,
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        C_grad: wp.array(dtype=mat),
        J_grad: wp.array(dtype=float_t),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Hand-written adjoint of `p2g_fluid` for Newtonian particles: `p2g_stored_adjoint` with the stress
        recomputed from J and C, and ∂τ = k Q carried to J, C and the table by `newtonian_adjoint`."""
        p = wp.tid()
        b = body[p]
        Vp = vol[p]
        m = table[b, 0] * Vp
        Cp = C[p]
        Jp = J[p]
        K = table[b, P0]
        eta = table[b, P0 + 1]
        gamma = table[b, P0 + 2]
        zeta = table[b, P0 + 3]
        tp = fl.newtonian(fl.with_det(Jp), Cp, K, eta, gamma, zeta)
        k = -dt * Vp * float_t(4.0) * inv_dx * inv_dx
        Q, gm = scatter_adjoint(p, x, v[p], Cp, tp, m, k, res, inv_dx, grid_grad, x_grad, v_grad)
        dJ, dC, dK, deta, dzeta = fl.newtonian_adjoint(Jp, Cp, K, eta, gamma, zeta, k * Q)
        C_grad[p] = C_grad[p] + m * Q + dC
        J_grad[p] = J_grad[p] + dJ
        if table_needs_grad != 0:
            wp.atomic_add(table_grad, b, 0, Vp * gm)
            wp.atomic_add(table_grad, b, P0, dK)
            wp.atomic_add(table_grad, b, P0 + 1, deta)
            wp.atomic_add(table_grad, b, P0 + 3, dzeta)

    @wp.kernel
    def g2p_fluid_adjoint(
        x: wp.array(dtype=vec),
        J: wp.array(dtype=float_t),
        grid_v: wp.array(dtype=vec),
        res: wp.vec3i,
        inv_dx: float_t,
        dt: float_t,
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        gx_out: wp.array(dtype=vec),
        gv_out: wp.array(dtype=vec),
        gC_out: wp.array(dtype=mat),
        gJ_out: wp.array(dtype=float_t),
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        J_grad: wp.array(dtype=float_t),
        grid_v_grad: wp.array(dtype=vec),
    ):
        """Hand-written adjoint of `g2p_fluid` (reads its stored v_p and C_p: no replay of the gather).

        J_new = det(M) J with M = I + Δt C_p (zero gradient where clamped at 10⁻⁶): ∂J = det(M) ∂J_new,
        ∂C_p gains Δt ∂J_new J det(M) M⁻ᵀ; the rest is `g2p_stored_adjoint`'s."""
        p = wp.tid()
        Cn = C_out[p]
        vp = v_out[p]
        gxn = gx_out[p]
        gC = gC_out[p]
        M = wp.identity(n=dim, dtype=float_t) + dt * Cn
        det = wp.determinant(M)
        Jp = J[p]
        if det * Jp > float_t(1e-6):
            gJn = gJ_out[p]
            J_grad[p] = J_grad[p] + det * gJn
            gC = gC + (dt * gJn * Jp * det) * wp.transpose(wp.inverse(M))
        gather_adjoint(p, x, vp, (float_t(4.0) * inv_dx * inv_dx) * gC, gv_out[p], gxn, dt, grid_v, res, inv_dx,
                       grid_v_grad, x_grad)

    @wp.kernel
    def gather_j_adjoint(
        order: wp.array(dtype=wp.int32),
        F: wp.array(dtype=mat),
        xs_grad: wp.array(dtype=vec),
        vs_grad: wp.array(dtype=vec),
        Cs_grad: wp.array(dtype=mat),
        Js_grad: wp.array(dtype=float_t),
        # outputs (accumulated; `order` is a permutation: one writer per particle)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        C_grad: wp.array(dtype=mat),
        F_grad: wp.array(dtype=mat),
    ):
        """Hand-written adjoint of `sort_kernels.gather_j` (J = det F in cell order): ∂F = ∂J cof F."""
        t = wp.tid()
        p = order[t]
        x_grad[p] = x_grad[p] + xs_grad[t]
        v_grad[p] = v_grad[p] + vs_grad[t]
        C_grad[p] = C_grad[p] + Cs_grad[t]
        F_grad[p] = F_grad[p] + Js_grad[t] * E.cofactor(F[p])

    @wp.kernel
    def scatter_j_adjoint(
        order: wp.array(dtype=wp.int32),
        Js: wp.array(dtype=float_t),
        F_out: wp.array(dtype=mat),
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        C_grad: wp.array(dtype=mat),
        F_grad: wp.array(dtype=mat),
        # outputs (accumulated)
        xs_grad: wp.array(dtype=vec),
        vs_grad: wp.array(dtype=vec),
        Cs_grad: wp.array(dtype=mat),
        Js_grad: wp.array(dtype=float_t),
    ):
        """Hand-written adjoint of `sort_kernels.scatter_j` (F = y I, y = max(J, 10⁻⁶)^{1/d} read back from
        F_out): ∂J = tr ∂F / (d y^{d−1}), zero where J is clamped."""
        t = wp.tid()
        p = order[t]
        xs_grad[t] = xs_grad[t] + x_grad[p]
        vs_grad[t] = vs_grad[t] + v_grad[p]
        Cs_grad[t] = Cs_grad[t] + C_grad[p]
        if Js[t] > float_t(1e-6):
            y = F_out[p][0, 0]
            dJ = wp.trace(F_grad[p]) * float_t(INV_DIM) / y
            if wp.static(dim == 3):
                dJ = dJ / y
            Js_grad[t] = Js_grad[t] + dJ

    # with colliders (not meshes) the grid update's adjoint is hand-written too
    grid_update_collider_adjoint = None
    if has_colliders and not has_mesh:
        grid_update_collider_adjoint = make_collider_adjoint(
            T, SimpleNamespace(sdf_local=sdf_local, deepest=deepest, block_node=block_node, to3=to3, from3=from3,
                               wall_mask=wall_mask),
            shapes=(COLLIDER_PLANE, COLLIDER_BOX, COLLIDER_SPHERE, COLLIDER_CYLINDER, COLLIDER_CAPSULE))

    return SimpleNamespace(p2g=p2g, grid_update=grid_update, g2p=g2p, mark_blocks=mark_blocks,
                           grid_update_collider_adjoint=grid_update_collider_adjoint,
                           p2g_fluid=p2g_fluid, g2p_fluid=g2p_fluid, grid_update_blocks=grid_update_blocks,
                           grid_update_marked=grid_update_marked,
                           stress=stress, p2g_stored=p2g_stored,
                           p2g_stored_adjoint=p2g_stored_adjoint, g2p_stored=g2p_stored, project_trial=project_trial,
                           g2p_stored_adjoint=g2p_stored_adjoint, grid_update_adjoint=grid_update_adjoint,
                           p2g_fluid_adjoint=p2g_fluid_adjoint, g2p_fluid_adjoint=g2p_fluid_adjoint,
                           gather_j_adjoint=gather_j_adjoint, scatter_j_adjoint=scatter_j_adjoint,
                           grid_update_adjoint_blocks=grid_update_adjoint_blocks)
