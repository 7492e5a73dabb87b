"""Shape matching of rigid bodies (see `physim.mpm.materials.rigid` for the equations).

Three launches after `g2p`: per-body sums of mass, m x and m v; per-body sums of
A = Σ m r r₀ᵀ, angular momentum and inertia about the new centre; then every particle
is copied, rigid ones replaced by their rigid motion (per-body quantities are
recomputed per particle, which is cheaper than another launch for a few bodies).
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.svd_kernels import make_svd_funcs

__all__ = ["make_rigid_kernels"]


@functools.cache
def make_rigid_kernels(T: KernelTypes):
    """Kernels ``rigid_sums1, rigid_sums2, rigid_apply`` and, for the taped path, ``rigid_frame`` and the
    hand-written adjoints (``rigid_apply_adjoint``, ``rigid_sums2_adjoint``, ``rigid_sums1_adjoint``, per rigid
    particle; ``hand_rigid = False`` in `WarpBackend` gives Warp's automatic adjoints instead)."""
    dim, float_t, vec, mat, vec3, mat3 = T.dim, T.float, T.vec, T.mat, T.vec3, T.mat3
    S = make_svd_funcs(T)
    polar, svd, polar_svd = S.polar, S.svd, S.polar_svd

    @wp.kernel
    def rigid_sums1(
        ridx: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        # outputs
        msum: wp.array(dtype=float_t),
        mx: wp.array(dtype=vec),
        mv: wp.array(dtype=vec),
    ):
        """Mass, first moment and momentum of each rigid body."""
        t = wp.tid()
        p = ridx[t]
        rb = rbody[t]
        m = table[body[p], 0] * vol[p]
        wp.atomic_add(msum, rb, m)
        wp.atomic_add(mx, rb, m * x[p])
        wp.atomic_add(mv, rb, m * v[p])

    @wp.func
    def cross3(a: vec, b: vec) -> vec3:
        if wp.static(dim == 3):
            return wp.cross(vec3(a[0], a[1], a[2]), vec3(b[0], b[1], b[2]))
        else:
            return vec3(float_t(0.0), float_t(0.0), a[0] * b[1] - a[1] * b[0])

    @wp.func
    def inertia(r: vec) -> mat3:
        if wp.static(dim == 3):
            rr = vec3(r[0], r[1], r[2])
            return wp.dot(rr, rr) * wp.identity(n=3, dtype=float_t) - wp.outer(rr, rr)
        else:
            # In 2D only the z-z entry matters; the other diagonal entries keep the matrix invertible.
            s = wp.dot(r, r)
            return wp.diag(vec3(s, s, s))

    @wp.kernel
    def rigid_sums2(
        ridx: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        r0: wp.array(dtype=vec),
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        msum: wp.array(dtype=float_t),
        mx: wp.array(dtype=vec),
        # outputs
        A: wp.array(dtype=mat),
        L: wp.array(dtype=vec3),
        I: wp.array(dtype=mat3),
    ):
        """Shape-matching matrix, angular momentum and inertia about the current centre."""
        t = wp.tid()
        p = ridx[t]
        rb = rbody[t]
        m = table[body[p], 0] * vol[p]
        c = mx[rb] / msum[rb]
        r = x[p] - c
        wp.atomic_add(A, rb, m * wp.outer(r, r0[t]))
        wp.atomic_add(L, rb, m * cross3(r, v[p]))
        wp.atomic_add(I, rb, m * inertia(r))

    @wp.kernel
    def rigid_apply(
        rslot: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        r0: wp.array(dtype=vec),
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        C: wp.array(dtype=mat),
        F: wp.array(dtype=mat),
        msum: wp.array(dtype=float_t),
        mx: wp.array(dtype=vec),
        mv: wp.array(dtype=vec),
        A: wp.array(dtype=mat),
        L: wp.array(dtype=vec3),
        I: wp.array(dtype=mat3),
        # outputs
        x_out: wp.array(dtype=vec),
        v_out: wp.array(dtype=vec),
        C_out: wp.array(dtype=mat),
        F_out: wp.array(dtype=mat),
    ):
        """Copy every particle; rigid ones (rslot >= 0) take the body's rigid motion."""
        p = wp.tid()
        t = rslot[p]
        if t < 0:
            x_out[p] = x[p]
            v_out[p] = v[p]
            C_out[p] = C[p]
            F_out[p] = F[p]
        else:
            rb = rbody[t]
            M = msum[rb]
            c = mx[rb] / M
            vc = mv[rb] / M
            R = polar(A[rb])
            Ireg = I[rb] + float_t(1e-12) * M * wp.identity(n=3, dtype=float_t)
            w = wp.inverse(Ireg) * L[rb]
            xn = c + R * r0[t]
            r = xn - c
            W = mat()
            vn = vc
            if wp.static(dim == 3):
                W = mat(float_t(0.0), -w[2], w[1], w[2], float_t(0.0), -w[0], -w[1], w[0], float_t(0.0))
                vn = vc + W * r
            else:
                W = mat(float_t(0.0), -w[2], w[2], float_t(0.0))
                vn = vc + W * r
            x_out[p] = xn
            v_out[p] = vn
            C_out[p] = W
            F_out[p] = R

    @wp.func
    def cross3_adjoint(a: vec, b: vec, g: vec3):
        """(∂a, ∂b) of g · cross3(a, b)."""
        if wp.static(dim == 3):
            da = wp.cross(vec3(b[0], b[1], b[2]), g)
            db = wp.cross(g, vec3(a[0], a[1], a[2]))
            return vec(da[0], da[1], da[2]), vec(db[0], db[1], db[2])
        else:
            return g[2] * vec(b[1], -b[0]), g[2] * vec(-a[1], a[0])

    @wp.func
    def inertia_adjoint(r: vec, g: mat3) -> vec:
        """∂r of ⟨g, inertia(r)⟩."""
        tr = g[0, 0] + g[1, 1] + g[2, 2]
        if wp.static(dim == 3):
            rr = vec3(r[0], r[1], r[2])
            d = float_t(2.0) * tr * rr - (g + wp.transpose(g)) * rr
            return vec(d[0], d[1], d[2])
        else:
            return float_t(2.0) * tr * r

    @wp.func
    def spin_adjoint(Ib: mat3, Lb: vec3, M: float_t, dW: mat):
        """(∂I, ∂L) of the spin matrix W = skew(I_reg⁻¹ L), I_reg = I + 10⁻¹² M 1, for the incoming ∂W."""
        dw = vec3()
        if wp.static(dim == 3):
            dw = vec3(dW[2, 1] - dW[1, 2], dW[0, 2] - dW[2, 0], dW[1, 0] - dW[0, 1])
        else:
            dw = vec3(float_t(0.0), float_t(0.0), dW[1, 0] - dW[0, 1])
        Iinv = wp.inverse(Ib + float_t(1e-12) * M * wp.identity(n=3, dtype=float_t))
        w = Iinv * Lb
        return -(wp.transpose(Iinv) * wp.outer(dw, w)), wp.transpose(Iinv) * dw

    @wp.kernel
    def rigid_frame(
        A: wp.array(dtype=mat),
        L: wp.array(dtype=vec3),
        I: wp.array(dtype=mat3),
        msum: wp.array(dtype=float_t),
        # outputs
        R_out: wp.array(dtype=mat),
        W_out: wp.array(dtype=mat),
        U_out: wp.array(dtype=mat),
        s_out: wp.array(dtype=vec),
        V_out: wp.array(dtype=mat),
    ):
        """Rotation R = polar(A), spin matrix W and the SVD of A of each body, as `rigid_apply` computes R
        and W per particle (one SVD per body for the adjoint, instead of one per particle)."""
        rb = wp.tid()
        U, s, V = svd(A[rb])
        R_out[rb] = polar_svd(U, V)
        U_out[rb] = U
        s_out[rb] = s
        V_out[rb] = V
        Ireg = I[rb] + float_t(1e-12) * msum[rb] * wp.identity(n=3, dtype=float_t)
        w = wp.inverse(Ireg) * L[rb]
        if wp.static(dim == 3):
            W_out[rb] = mat(float_t(0.0), -w[2], w[1], w[2], float_t(0.0), -w[0], -w[1], w[0], float_t(0.0))
        else:
            W_out[rb] = mat(float_t(0.0), -w[2], w[2], float_t(0.0))

    @wp.kernel
    def rigid_apply_adjoint(
        ridx: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        r0: wp.array(dtype=vec),
        R: wp.array(dtype=mat),
        W: wp.array(dtype=mat),
        # gradients of the outputs in, of the inputs out: one buffer each (`WarpBackend._rigid`)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        C_grad: wp.array(dtype=mat),
        F_grad: wp.array(dtype=mat),
        # outputs (accumulated)
        c_grad: wp.array(dtype=vec),
        vc_grad: wp.array(dtype=vec),
        R_grad: wp.array(dtype=mat),
        W_grad: wp.array(dtype=mat),
    ):
        """Hand-written adjoint of `rigid_apply`, per rigid particle: its motion (x = c + R r₀,
        v = v_c + W R r₀, C = W, F = R) adds its output gradients to its body's ∂c, ∂v_c, ∂R, ∂W, and its
        input gradients start from zero (the copied particles' gradients pass through untouched: the
        outputs share the inputs' gradient buffers)."""
        t = wp.tid()
        p = ridx[t]
        rb = rbody[t]
        r = r0[t]
        gx = x_grad[p]
        gv = v_grad[p]
        wp.atomic_add(c_grad, rb, gx)
        wp.atomic_add(vc_grad, rb, gv)
        wp.atomic_add(R_grad, rb, wp.outer(gx + wp.transpose(W[rb]) * gv, r) + F_grad[p])
        wp.atomic_add(W_grad, rb, wp.outer(gv, R[rb] * r) + C_grad[p])
        x_grad[p] = vec()
        v_grad[p] = vec()
        C_grad[p] = mat()
        F_grad[p] = mat()

    @wp.kernel
    def rigid_sums2_adjoint(
        ridx: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        r0: wp.array(dtype=vec),
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        msum: wp.array(dtype=float_t),
        mx: wp.array(dtype=vec),
        L: wp.array(dtype=vec3),
        I: wp.array(dtype=mat3),
        U: wp.array(dtype=mat),
        s: wp.array(dtype=vec),
        V: wp.array(dtype=mat),
        R_grad: wp.array(dtype=mat),
        W_grad: wp.array(dtype=mat),
        want_table: int,
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        cen_grad: wp.array(dtype=vec),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Adjoint of `rigid_sums2` fused with the per-body part of `rigid_apply`'s (recomputed by every
        particle: ∂A = polarᵀ(∂R) from the stored SVD, ∂L and ∂I from ∂W); the centre's gradient
        (r = x − c) is summed per body into `cen_grad` for `rigid_sums1_adjoint`."""
        t = wp.tid()
        p = ridx[t]
        rb = rbody[t]
        M = msum[rb]
        dI, dL = spin_adjoint(I[rb], L[rb], M, W_grad[rb])
        dA = S.polar_adjoint(U[rb], s[rb], V[rb], R_grad[rb])
        b = body[p]
        m = table[b, 0] * vol[p]
        r = x[p] - mx[rb] / M
        vp = v[p]
        q = r0[t]
        dr_cross, dv = cross3_adjoint(r, vp, dL)
        dr = m * (dA * q + dr_cross + inertia_adjoint(r, dI))
        x_grad[p] = x_grad[p] + dr
        v_grad[p] = v_grad[p] + m * dv
        wp.atomic_sub(cen_grad, rb, dr)
        if want_table != 0:
            dm = wp.ddot(dA, wp.outer(r, q)) + wp.dot(dL, cross3(r, vp)) + wp.ddot(dI, inertia(r))
            wp.atomic_add(table_grad, b, 0, vol[p] * dm)

    @wp.kernel
    def rigid_sums1_adjoint(
        ridx: wp.array(dtype=wp.int32),
        rbody: wp.array(dtype=wp.int32),
        body: wp.array(dtype=wp.int32),
        vol: wp.array(dtype=float_t),
        table: wp.array2d(dtype=float_t),
        x: wp.array(dtype=vec),
        v: wp.array(dtype=vec),
        msum: wp.array(dtype=float_t),
        mx: wp.array(dtype=vec),
        mv: wp.array(dtype=vec),
        L: wp.array(dtype=vec3),
        I: wp.array(dtype=mat3),
        W_grad: wp.array(dtype=mat),
        c_grad: wp.array(dtype=vec),
        vc_grad: wp.array(dtype=vec),
        cen_grad: wp.array(dtype=vec),
        want_table: int,
        # outputs (accumulated)
        x_grad: wp.array(dtype=vec),
        v_grad: wp.array(dtype=vec),
        table_grad: wp.array2d(dtype=float_t),
    ):
        """Adjoint of `rigid_sums1` with the per-body gradients of M, Σ m x and Σ m v (recomputed by every
        particle): c = Σmx / M (from `rigid_apply` and `rigid_sums2`), v_c = Σmv / M and I_reg = I + 10⁻¹² M 1."""
        t = wp.tid()
        p = ridx[t]
        rb = rbody[t]
        M = msum[rb]
        dc = c_grad[rb] + cen_grad[rb]
        dvc = vc_grad[rb]
        dmx = dc / M
        dmv = dvc / M
        m = table[body[p], 0] * vol[p]
        x_grad[p] = x_grad[p] + m * dmx
        v_grad[p] = v_grad[p] + m * dmv
        if want_table != 0:
            dI, _dL = spin_adjoint(I[rb], L[rb], M, W_grad[rb])
            dM = -(wp.dot(dc, mx[rb]) + wp.dot(dvc, mv[rb])) / (M * M) + float_t(1e-12) * wp.trace(dI)
            dm = dM + wp.dot(dmx, x[p]) + wp.dot(dmv, v[p])
            wp.atomic_add(table_grad, body[p], 0, vol[p] * dm)

    return SimpleNamespace(rigid_sums1=rigid_sums1, rigid_sums2=rigid_sums2, rigid_apply=rigid_apply,
                           rigid_frame=rigid_frame, rigid_apply_adjoint=rigid_apply_adjoint,
                           rigid_sums2_adjoint=rigid_sums2_adjoint, rigid_sums1_adjoint=rigid_sums1_adjoint)
