"""Hand-written adjoint of the grid update with colliders (the taped substeps' backward).

The grid update of a node with mass (see `transfer_kernels.update_node`) is

    u = (m v)/m,  v = u + Δt g,
    c = the most-penetrated collider at the node (an index: piecewise constant),
    r = x_i − p_c,  n = R_c N(R_cᵀ r),  v_c = v_lin + ω × r,
    v' = v_c (sticky) | v_c + φ v_t (v_r·n < 0, with v_r = v − v_c, v_t = v_r − (v_r·n) n,
         φ = max(0, 1 + μ (v_r·n)/|v_t|)) | v (separating),
    f = (m/Δt)(v − v'),  force_c += f,  torque_c += r × f,
    then the domain walls zero some components of v' (a 0/1 mask),

with N the collider's outward normal in its frame: central differences of its signed
distance (step Δx/2), normalised. Warp's automatic adjoint of that kernel replays the
whole node update, zero-initialises the adjoints of every local of every function on every
node (those without mass included) and differentiates the six signed distances of the
normal through Warp's generic rules, whose derivative of a square root at 0 is 1/0 (in the
cylinder's distance, at points more than Δx/2 inside it or on its axis). This adjoint is a
gather, one thread per node of the listed blocks: a node without mass costs a read and two
writes; a node with mass replays the search and the projection
and then applies the chain rule above by hand, with the gradient of each signed distance
written out per shape (the derivative Warp's rules take, the same branch at kinks, and 0
where they give 1/0 · 0). Gradients reach the node's momentum and mass, the collider's substep record
(position, quaternion, linear and angular velocity: summed with atomics) and its friction.

Mesh colliders keep Warp's automatic adjoint (the gradient of a closest-point query is
Warp's own); `make_transfer_kernels` builds this kernel only for scenes without meshes.
"""

from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes

__all__ = ["make_collider_adjoint"]


def make_collider_adjoint(T: KernelTypes, f: SimpleNamespace, *,
                          shapes: tuple[int, int, int, int, int]):
    """The adjoint kernel of one variant.

    Args:
        T: Kernel types.
        f: Forward functions of the variant (``sdf_local``, ``deepest``, ``block_node``, ``to3``, ``from3``,
            ``wall_mask``).
        shapes: Codes of the plane, box, sphere, cylinder and capsule colliders.
    """
    dim, float_t, vec, vecg, vec3, quat = T.dim, T.float, T.vec, T.vecg, T.vec3, T.quat
    tiny = 1e-12 if T.float == wp.float64 else 1e-7
    PLANE, BOX, SPHERE, CYLINDER, CAPSULE = shapes
    sdf_local, deepest, block_node, to3, from3 = f.sdf_local, f.deepest, f.block_node, f.to3, f.from3
    wall_mask = f.wall_mask

    @wp.func
    def sgn(x: float_t) -> float_t:
        """Derivative of |x| as Warp's adjoint takes it (+1 at 0)."""
        out = float_t(1.0)
        if x < float_t(0.0):
            out = float_t(-1.0)
        return out

    @wp.func
    def sdf_grad_local(kind: int, p: vec3, prm: vec3) -> vec3:
        """Gradient of `sdf_local` (not a mesh) with respect to the point p, in the collider frame."""
        g = vec3()
        zero = float_t(0.0)
        if kind == PLANE:
            g = vec3(zero, float_t(1.0), zero)
        elif kind == BOX:
            q = vec3(wp.abs(p[0]) - prm[0], wp.abs(p[1]) - prm[1], wp.abs(p[2]) - prm[2])
            o = vec3(wp.max(q[0], zero), wp.max(q[1], zero), wp.max(q[2], zero))
            ln = wp.length(o)
            if ln > zero:  # length(outside): only the components that are outside
                if q[0] > zero:
                    g[0] = o[0] / ln * sgn(p[0])
                if q[1] > zero:
                    g[1] = o[1] / ln * sgn(p[1])
                if q[2] > zero:
                    g[2] = o[2] / ln * sgn(p[2])
            # min(max(q0, max(q1, q2)), 0): the component that max picks, when negative
            if q[0] > wp.max(q[1], q[2]):
                if q[0] < zero:
                    g[0] = g[0] + sgn(p[0])
            elif q[1] > q[2]:
                if q[1] < zero:
                    g[1] = g[1] + sgn(p[1])
            elif q[2] < zero:
                g[2] = g[2] + sgn(p[2])
        elif kind == SPHERE:
            ln = wp.length(p)
            if ln > zero:
                g = p / ln
        elif kind == CYLINDER:
            r = wp.sqrt(p[0] * p[0] + p[2] * p[2])
            a = r - prm[0]
            c = wp.abs(p[1]) - prm[1]
            ga = zero
            gc = zero
            if wp.max(a, c) < zero:  # min(max(a, c), 0)
                if a > c:
                    ga = float_t(1.0)
                else:
                    gc = float_t(1.0)
            pa = wp.max(a, zero)
            pc = wp.max(c, zero)
            s = wp.sqrt(pa * pa + pc * pc)
            if s > zero:  # sqrt(max(a, 0)² + max(c, 0)²); inside both, its derivative is 0 (not 0/0)
                if a > zero:
                    ga += pa / s
                if c > zero:
                    gc += pc / s
            if r > zero:
                g[0] = ga * p[0] / r
                g[2] = ga * p[2] / r
            g[1] = gc * sgn(p[1])
        elif kind == CAPSULE:
            y = wp.clamp(p[1], -prm[1], prm[1])
            w = vec3(p[0], p[1] - y, p[2])
            ln = wp.length(w)
            if ln > zero:
                g = w / ln
                if p[1] >= -prm[1] and p[1] < prm[1]:  # clamp passes p1 through: its two paths cancel
                    g[1] = zero
        return g

    @wp.func
    def rotate_grad_q(q: quat, x: vec3, g: vec3, sign: float_t) -> quat:
        """∂(g · rot(q, x))/∂q of Warp's `quat_rotate` (sign +1) or `quat_rotate_inv` (sign −1)."""
        qv = vec3(q[0], q[1], q[2])
        w = q[3]
        two = float_t(2.0)
        gv = (two * wp.dot(qv, x)) * g + (two * wp.dot(qv, g)) * x + (sign * two * w) * wp.cross(x, g)
        gw = float_t(4.0) * w * wp.dot(x, g) + sign * two * wp.dot(wp.cross(qv, x), g)
        return quat(gv[0], gv[1], gv[2], gw)

    @wp.kernel
    def grid_update_collider_adjoint(
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
        blocks: wp.array(dtype=wp.int32),
        nb: wp.vec3i,
        grid_v_grad: wp.array(dtype=vec),
        force_grad: wp.array(dtype=vec3),
        torque_grad: wp.array(dtype=vec3),
        want_cstate: int,
        want_friction: int,
        # outputs: grid_grad overwritten (grid_v_grad is read, then zeroed), the others accumulated
        grid_grad: wp.array(dtype=vecg),
        cstate_grad: wp.array3d(dtype=float_t),
        friction_grad: wp.array(dtype=float_t),
    ):
        """Adjoint of `grid_update` with colliders (see the module docstring)."""
        I = block_node(wp.tid(), blocks, nb, res)
        if I[0] < 0:
            return
        node = (I[0] * res[1] + I[1]) * res[2] + I[2]
        g = grid[node]
        m = g[dim]
        gv = grid_v_grad[node]
        # the buffers are shared by the substeps of a step: ∂v is left zero for the previous
        # substep's g2p adjoint, ∂(grid) is overwritten (its only writer)
        grid_v_grad[node] = vec()
        out = vecg()
        if m > float_t(0.0):
            zero = float_t(0.0)
            u = vec()
            for d in range(dim):
                u[d] = g[d] / m
            v0 = u + dt * gravity
            pos = vec3(float_t(I[0]) * dx, float_t(I[1]) * dx, float_t(I[2]) * dx)
            c = deepest(pos, ncol, ctype, cparam, cmesh, cstate, s)
            # replay the collider's projection (the same operations as the forward)
            v = v0
            r = vec3()
            cq = quat()
            cw = vec3()
            pl = vec3()
            nr = vec3()  # unnormalised normal in the collider frame (central differences)
            ln = zero
            nl = vec3(zero, float_t(1.0), zero)
            nn = vec()
            vc = vec()
            vr = vec()
            vt = vec()
            vn = zero
            lt = zero
            fac = zero
            mu = zero
            kind = int(0)  # noqa: UP018, RUF046  (a runtime variable, assigned in a branch)
            sticky = int(0)  # noqa: UP018, RUF046
            h = float_t(0.5) * dx
            if c >= 0:
                kind = ctype[c]
                prm = cparam[c]
                sticky = csticky[c]
                cp = vec3(cstate[s, c, 0], cstate[s, c, 1], cstate[s, c, 2])
                cq = quat(cstate[s, c, 3], cstate[s, c, 4], cstate[s, c, 5], cstate[s, c, 6])
                cv = vec3(cstate[s, c, 7], cstate[s, c, 8], cstate[s, c, 9])
                cw = vec3(cstate[s, c, 10], cstate[s, c, 11], cstate[s, c, 12])
                r = pos - cp
                pl = wp.quat_rotate_inv(cq, r)
                if kind != PLANE:
                    ex = vec3(h, zero, zero)
                    ey = vec3(zero, h, zero)
                    ez = vec3(zero, zero, h)
                    nr = vec3(sdf_local(kind, pl + ex, prm, cmesh[c]) - sdf_local(kind, pl - ex, prm, cmesh[c]),
                              sdf_local(kind, pl + ey, prm, cmesh[c]) - sdf_local(kind, pl - ey, prm, cmesh[c]),
                              sdf_local(kind, pl + ez, prm, cmesh[c]) - sdf_local(kind, pl - ez, prm, cmesh[c]))
                    ln = wp.length(nr)
                    if ln > float_t(tiny):
                        nl = nr / ln
                nn = from3(wp.quat_rotate(cq, nl))
                vc = from3(cv + wp.cross(cw, r))
                vr = v0 - vc
                vn = wp.dot(vr, nn)
                mu = friction[c]
                if sticky != 0:
                    v = vc
                elif vn < zero:
                    vt = vr - vn * nn
                    lt = wp.length(vt)
                    if lt > float_t(tiny):
                        fac = wp.max(zero, float_t(1.0) + mu * vn / lt)
                    v = vc + fac * vt
            # the domain walls: the forward's 0/1 mask on ∂v, replayed from the values
            gv = wp.cw_mul(gv, wall_mask(I, v, res, bound, bc))
            gu = gv  # ∂v0
            gm = zero
            if c >= 0:
                # f = (m/Δt)(v0 − v'): force_c += f, torque_c += r × f
                gt = torque_grad[c]
                dv = v0 - v
                f3 = to3((m / dt) * dv)
                gf = from3(force_grad[c] + wp.cross(gt, r))
                gr = wp.cross(f3, gt)
                gm = wp.dot(gf, dv) / dt
                gvp = gv - (m / dt) * gf  # ∂v'
                gu = (m / dt) * gf
                gvc = vec()
                gnn = vec()
                gmu = zero
                if sticky != 0:
                    gvc = gvp
                elif vn < zero:
                    gvc = gvp
                    gvt = fac * gvp
                    gvn = zero
                    if lt > float_t(tiny):
                        arg = float_t(1.0) + mu * vn / lt
                        if arg >= zero:  # max(0, arg) passes arg through (Warp's rule at a tie)
                            gfac = wp.dot(gvp, vt)
                            gmu = gfac * vn / lt
                            gvn = gfac * mu / lt
                            gvt = gvt + (-gfac * mu * vn / (lt * lt * lt)) * vt
                    # v_t = v_r − v_n n,  v_n = v_r·n
                    gvn = gvn - wp.dot(gvt, nn)
                    gnn = -vn * gvt + gvn * vr
                    gvr = gvt + gvn * nn
                    gu = gu + gvr
                    gvc = gvc - gvr
                else:
                    gu = gu + gvp
                # v_c = v_lin + ω × r
                gvc3 = to3(gvc)
                gr += wp.cross(gvc3, cw)
                gcw = wp.cross(r, gvc3)
                # n = R N(Rᵀ r)
                gn3 = to3(gnn)
                gq = rotate_grad_q(cq, nl, gn3, float_t(1.0))
                gnl = wp.quat_rotate_inv(cq, gn3)
                gpl = vec3()
                if kind != PLANE and ln > float_t(tiny):
                    gnr = (gnl - nl * wp.dot(nl, gnl)) / ln
                    prm = cparam[c]
                    ex = vec3(h, zero, zero)
                    ey = vec3(zero, h, zero)
                    ez = vec3(zero, zero, h)
                    gpl = (gnr[0] * (sdf_grad_local(kind, pl + ex, prm) - sdf_grad_local(kind, pl - ex, prm))
                           + gnr[1] * (sdf_grad_local(kind, pl + ey, prm) - sdf_grad_local(kind, pl - ey, prm))
                           + gnr[2] * (sdf_grad_local(kind, pl + ez, prm) - sdf_grad_local(kind, pl - ez, prm)))
                gq += rotate_grad_q(cq, r, gpl, float_t(-1.0))
                gr += wp.quat_rotate(cq, gpl)
                if want_cstate != 0:
                    for k in range(3):
                        wp.atomic_add(cstate_grad, s, c, k, -gr[k])
                        wp.atomic_add(cstate_grad, s, c, 7 + k, gvc3[k])
                        wp.atomic_add(cstate_grad, s, c, 10 + k, gcw[k])
                    for k in range(4):
                        wp.atomic_add(cstate_grad, s, c, 3 + k, gq[k])
                if want_friction != 0:
                    wp.atomic_add(friction_grad, c, gmu)
            # v0 = (m v)/m + Δt g
            for d in range(dim):
                out[d] = gu[d] / m
            out[dim] = gm - wp.dot(gu, u) / m
        grid_grad[node] = out

    return grid_update_collider_adjoint
