"""Pressure projection on the staggered grid: divergence, Poisson solves, gradient subtraction.

The projection potential φ (= dt·p/ρ, [m²/s]) solves the Neumann problem
``Σ_open faces (φ_J − φ_I) = h² · div_I`` on fluid cells; then ``v = v* − ∇φ`` on open
faces makes the discrete divergence vanish. Solid walls and solid cells close faces,
which drops them from both the divergence and the Laplacian.

Gradients. `divergence` and `subtract_gradient` are differentiated by Taichi's autodiff.
The solvers are not: `JacobiSolve` and `CGSolve` are kernel-like objects (a forward
call and a ``.grad``) with hand-written adjoints, which the `TaichiOp` recorder replays
like kernels.

- Jacobi is linear in (φ₀, div), so its adjoint needs none of the forward iterates:
  the backward pass runs the transposed sweeps through two ping-pong gradient fields.
  The gradient is exact for the finite number of sweeps, and memory does not grow with
  the iteration count (no per-iteration storage).
- CG is not linear in its input (the step lengths depend on it), so it is differentiated
  implicitly: φ = P A⁺ P b with b = −h² div and P removing the mean over fluid cells is
  symmetric, so the adjoint is one more solve with the same operator. This is the
  gradient of the exact projection; it matches the computed forward map to the CG tolerance.
"""

import logging
import math

import taichi as ti

nd = ti.types.ndarray()

log = logging.getLogger(__name__)

class PressureKernels:
    """Mixin of `GasArrays`: kernels of the projection and of both Poisson solvers."""

    # -- differentiated by Taichi's autodiff -----------------------------------------------
    @ti.kernel
    def divergence(self, v_star: nd, div: nd, fluid: nd, s: ti.i32, inv_h_: ti.f64):
        """div[s] = Σ_d (v*[I + e_d] − v*[I])_d / h on fluid cells."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            inv_h = ti.cast(inv_h_, self.real)
            acc = ti.cast(0.0, self.real)
            for d in ti.static(range(self.dim)):
                e = ti.Vector.unit(self.dim, d, ti.i32)
                acc += self.face_value(v_star, s, d, I + e, hi) - v_star[s, I][d]
            div[s, I] = acc * inv_h * fluid[I]

    @ti.kernel
    def subtract_gradient(self, v_star: nd, p: nd, v: nd, open_lo: nd, fluid: nd, s: ti.i32, inv_h_: ti.f64):
        """v[s+1] = v*[s] − ∇φ[s+1] on open faces, 0 on closed ones."""
        for I in ti.grouped(fluid):
            inv_h = ti.cast(inv_h_, self.real)
            u = ti.Vector.zero(self.real, self.dim)
            for d in ti.static(range(self.dim)):
                Im = ti.max(I - ti.Vector.unit(self.dim, d, ti.i32), 0)
                grad = (p[s + 1, I] - p[s + 1, Im]) * inv_h
                u[d] = (v_star[s, I][d] - grad) * open_lo[I][d]
            v[s + 1, I] = u

    # -- plain kernels of the solvers (no autodiff) -----------------------------------------
    @ti.func
    def neighbour_sum(self, f: ti.template(), I, open_lo: ti.template(), open_hi: ti.template(), hi):
        """Σ over the open faces of cell I of f at the neighbour across the face."""
        acc = ti.cast(0.0, self.real)
        for d in ti.static(range(self.dim)):
            e = ti.Vector.unit(self.dim, d, ti.i32)
            acc += open_lo[I][d] * f[ti.max(I - e, 0)] + open_hi[I][d] * f[ti.min(I + e, hi)]
        return acc

    @ti.kernel
    def p_to_scratch(self, p: nd, dst: nd, fluid: nd, s: ti.i32, use: ti.i32):
        for I in ti.grouped(fluid):
            dst[I] = p[s, I] * fluid[I] * use

    @ti.kernel
    def scratch_to_p(self, src: nd, p: nd, fluid: nd, s: ti.i32):
        for I in ti.grouped(fluid):
            p[s + 1, I] = src[I]

    @ti.kernel
    def jacobi_sweeps(self, x: nd, y: nd, div: nd, inv_n: nd, open_lo: nd, open_hi: nd, fluid: nd, s: ti.i32,
                      h2_: ti.f64, omega_: ti.f64, count: ti.template(), adjoint: ti.template()):
        """`count` damped Jacobi sweeps on fluid cells (0 elsewhere), x → y → x …, forward or transposed.

        Several sweeps per launch save launch overhead on small grids (each sweep is its
        own parallel loop, so they still run one after the other).
        Forward: dst = (1 − ω) src + ω (Σ_open src_J − h² div) / n.
        Adjoint (`div` is then ∂L/∂div): with g = ∂L/∂dst the transpose is
        ∂L/∂src_J = (1 − ω) g_J + ω Σ_open g_I / n_I and ∂L/∂div_I = −ω h² g_I / n_I. In the
        scaled variable h = g / n it is the forward sweep without right-hand side,
        h' = (1 − ω) h + ω Σ_open h_J / n, plus ∂L/∂div −= ω h² h.
        """
        for k in ti.static(range(count)):
            src = ti.static(x if k % 2 == 0 else y)
            dst = ti.static(y if k % 2 == 0 else x)
            for I in ti.grouped(fluid):
                hi = self.last_cell(fluid)
                h2 = ti.cast(h2_, self.real)
                omega = ti.cast(omega_, self.real)
                val = ti.cast(0.0, self.real)
                if inv_n[I] > 0:
                    total = self.neighbour_sum(src, I, open_lo, open_hi, hi)
                    if ti.static(adjoint):
                        div[s, I] += -omega * h2 * src[I]
                    else:
                        total -= h2 * div[s, I]
                    val = (1.0 - omega) * src[I] + omega * total * inv_n[I]
                dst[I] = val

    @ti.kernel
    def p_grad_to_scaled(self, p_grad: nd, dst: nd, inv_n: nd, s: ti.i32):
        for I in ti.grouped(inv_n):
            dst[I] = p_grad[s + 1, I] * inv_n[I]

    @ti.kernel
    def scaled_to_p_grad(self, src: nd, p_grad: nd, n_open: nd, fluid: nd, s: ti.i32):
        for I in ti.grouped(fluid):
            p_grad[s, I] += src[I] * ti.cast(n_open[I], self.real) * fluid[I]

    @ti.kernel
    def p_grad_to_scratch(self, p_grad: nd, dst: nd, fluid: nd, s: ti.i32):
        for I in ti.grouped(fluid):
            dst[I] = p_grad[s + 1, I] * fluid[I]

    @ti.kernel
    def scratch_to_div_grad(self, src: nd, div_grad: nd, fluid: nd, s: ti.i32, scale_: ti.f64):
        for I in ti.grouped(fluid):
            div_grad[s, I] += ti.cast(scale_, self.real) * src[I] * fluid[I]

    @ti.kernel
    def div_to_rhs(self, div: nd, dst: nd, fluid: nd, s: ti.i32, scale_: ti.f64):
        for I in ti.grouped(fluid):
            dst[I] = ti.cast(scale_, self.real) * div[s, I] * fluid[I]

    @ti.kernel
    def shift_fluid(self, f: nd, fluid: nd, value_: ti.f64):
        for I in ti.grouped(fluid):
            f[I] = (f[I] - ti.cast(value_, self.real)) * fluid[I]

    @ti.kernel
    def dot(self, a: nd, b: nd) -> ti.f64:
        acc = ti.cast(0.0, ti.f64)
        for I in ti.grouped(a):
            acc += ti.cast(a[I] * b[I], ti.f64)
        return acc

    @ti.kernel
    def cg_init(self, x: nd, b: nd, r: nd, z: nd, d: nd, n_open: nd, inv_n: nd, open_lo: nd, open_hi: nd,
                fluid: nd):
        """r = b − A x, z = d = M⁻¹ r with A = −(graph Laplacian) and M its diagonal n."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            ax = (x[I] * ti.cast(n_open[I], self.real) - self.neighbour_sum(x, I, open_lo, open_hi, hi)) * fluid[I]
            ri = (b[I] - ax) * fluid[I]
            r[I] = ri
            z[I] = ri * inv_n[I]
            d[I] = ri * inv_n[I]

    @ti.kernel
    def cg_matvec_dot(self, d: nd, ad: nd, n_open: nd, open_lo: nd, open_hi: nd, fluid: nd) -> ti.f64:
        """ad = A d; returns d·A d."""
        acc = ti.cast(0.0, ti.f64)
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            val = (d[I] * ti.cast(n_open[I], self.real) - self.neighbour_sum(d, I, open_lo, open_hi, hi)) * fluid[I]
            ad[I] = val
            acc += ti.cast(d[I] * val, ti.f64)
        return acc

    @ti.kernel
    def cg_update(self, x: nd, r: nd, z: nd, d: nd, ad: nd, inv_n: nd, alpha_: ti.f64) -> ti.types.vector(2, ti.f64):
        """x += α d, r −= α A d, z = M⁻¹ r; returns (r·r, r·z)."""
        rr = ti.cast(0.0, ti.f64)
        rz = ti.cast(0.0, ti.f64)
        for I in ti.grouped(x):
            alpha = ti.cast(alpha_, self.real)
            x[I] += alpha * d[I]
            ri = r[I] - alpha * ad[I]
            r[I] = ri
            zi = ri * inv_n[I]
            z[I] = zi
            rr += ti.cast(ri * ri, ti.f64)
            rz += ti.cast(ri * zi, ti.f64)
        return ti.Vector([rr, rz], dt=ti.f64)

    @ti.kernel
    def cg_direction(self, z: nd, d: nd, beta_: ti.f64):
        for I in ti.grouped(z):
            d[I] = z[I] + ti.cast(beta_, self.real) * d[I]


class _AdjointOnly:
    """A solver as the recorder sees it when only its adjoint is needed: the forward call does nothing."""

    def __init__(self, solver):
        self.grad = solver.grad

    def __call__(self, s: int) -> None:
        pass


_SWEEPS_PER_LAUNCH = 4  # even, so a full launch leaves the iterate where it started


class JacobiSolve:
    """`jacobi_iterations` sweeps from φ[s] (or 0) to φ[s+1], with an exact adjoint and O(1) extra memory."""

    def __init__(self, a, cfg):
        self.a = a
        self.iterations = cfg.jacobi_iterations
        self.omega = float(cfg.jacobi_omega)
        self.h2 = float(cfg.cell_size) ** 2
        self.warm = int(cfg.warm_start)
        self.adjoint_only = _AdjointOnly(self)

    def _sweep(self, rhs, s: int, adjoint: bool):
        """Run all sweeps on the scratch pair; returns the array holding the result."""
        a = self.a
        x, y = a.scratch[0], a.scratch[1]
        geo = (a.inv_n, a.open_lo, a.open_hi, a.fluid)
        full, rest = divmod(self.iterations, _SWEEPS_PER_LAUNCH)
        for _ in range(full):
            a.jacobi_sweeps(x, y, rhs, *geo, s, self.h2, self.omega, _SWEEPS_PER_LAUNCH, adjoint)
        for _ in range(rest):
            a.jacobi_sweeps(x, y, rhs, *geo, s, self.h2, self.omega, 1, adjoint)
            x, y = y, x
        return x

    def __call__(self, s: int) -> None:
        a = self.a
        a.p_to_scratch(a.p, a.scratch[0], a.fluid, s, self.warm)
        a.scratch_to_p(self._sweep(a.div, s, False), a.p, a.fluid, s)

    def grad(self, s: int) -> None:
        a = self.a
        a.p_grad_to_scaled(a.p.grad, a.scratch[0], a.inv_n, s)
        h = self._sweep(a.div.grad, s, True)
        if self.warm:
            a.scaled_to_p_grad(h, a.p.grad, a.n_open, a.fluid, s)


class CGSolve:
    """Diagonally preconditioned conjugate gradients to a relative tolerance; adjoint by a second solve."""

    def __init__(self, a, cfg):
        self.a = a
        self.tol = float(cfg.cg_tolerance)
        self.max_iterations = int(cfg.cg_max_iterations)
        self.h2 = float(cfg.cell_size) ** 2
        self.warm = int(cfg.warm_start)
        self.last_iterations = 0
        self.last_residual = 0.0
        self._warned = False
        self.adjoint_only = _AdjointOnly(self)

    def _project(self, field) -> None:
        a = self.a
        mean = a.dot(field, a.fluid) / max(a.fluid_count, 1)
        a.shift_fluid(field, a.fluid, mean)

    def _solve(self, x, b) -> None:
        """Solve A x = b in place (x holds the initial guess); b must have zero mean over fluid cells."""
        a = self.a
        r, z, d, ad = a.scratch[2], a.scratch[3], a.scratch[4], a.scratch[5]
        bnorm = math.sqrt(a.dot(b, b))
        if bnorm == 0.0:
            x.fill(0)
            self.last_iterations, self.last_residual = 0, 0.0
            return
        a.cg_init(x, b, r, z, d, a.n_open, a.inv_n, a.open_lo, a.open_hi, a.fluid)
        rr = a.dot(r, r)
        rz = a.dot(r, z)
        target = (self.tol * bnorm) ** 2
        it = 0
        while rr > target and it < self.max_iterations:
            dad = a.cg_matvec_dot(d, ad, a.n_open, a.open_lo, a.open_hi, a.fluid)
            if dad <= 0.0:  # only round-off is left in the constant null space
                break
            rr, rz_new = a.cg_update(x, r, z, d, ad, a.inv_n, rz / dad)
            a.cg_direction(z, d, rz_new / rz)
            rz = rz_new
            it += 1
        self.last_iterations, self.last_residual = it, math.sqrt(max(rr, 0.0)) / bnorm
        if rr > target and not self._warned:
            self._warned = True
            log.warning("gas CG pressure solve stopped after %d iterations at relative residual %.2e > %.1e; "
                        "raise cg_max_iterations", it, self.last_residual, self.tol)

    def __call__(self, s: int) -> None:
        a = self.a
        x, b = a.scratch[0], a.scratch[1]
        a.div_to_rhs(a.div, b, a.fluid, s, -self.h2)
        self._project(b)
        a.p_to_scratch(a.p, x, a.fluid, s, self.warm)
        self._solve(x, b)
        self._project(x)
        a.scratch_to_p(x, a.p, a.fluid, s)

    def grad(self, s: int) -> None:
        a = self.a
        y, g = a.scratch[0], a.scratch[1]
        a.p_grad_to_scratch(a.p.grad, g, a.fluid, s)
        self._project(g)
        y.fill(0)
        self._solve(y, g)
        self._project(y)
        a.scratch_to_div_grad(y, a.div.grad, a.fluid, s, -self.h2)
