"""Warp functions of the fluids (see `newtonian` and `non_newtonian` for the equations)."""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes

__all__ = ["make_fluid_funcs"]


@functools.cache
def make_fluid_funcs(T: KernelTypes):
    """Kirchhoff stresses ``newtonian(F, C, K, η, γ)``, ``herschel_bulkley(...)`` and ``volumetric(F)``."""
    dim, float_t, mat = T.dim, T.float, T.mat
    inv_dim = 1.0 / dim

    @wp.func
    def pressure_tau(J: float_t, K: float_t, gamma: float_t) -> float_t:
        """−J p with Tait p = (K/γ)(J^−γ − 1); for γ = 1 exactly K (J − 1)."""
        out = K * (J - float_t(1.0))
        if gamma != float_t(1.0):
            out = -J * K / gamma * (wp.pow(J, -gamma) - float_t(1.0))
        return out

    @wp.func
    def dev_rate(C: mat) -> mat:
        D = float_t(0.5) * (C + wp.transpose(C))
        return D - wp.trace(D) * float_t(inv_dim) * wp.identity(n=dim, dtype=float_t)

    @wp.func
    def newtonian(F: mat, C: mat, K: float_t, eta: float_t, gamma: float_t, zeta: float_t) -> mat:
        J = wp.determinant(F)
        tau = pressure_tau(J, K, gamma) * wp.identity(n=dim, dtype=float_t)
        if eta > float_t(0.0):
            tau = tau + J * float_t(2.0) * eta * dev_rate(C)
        if zeta > float_t(0.0):
            tau = tau + J * zeta * wp.trace(C) * wp.identity(n=dim, dtype=float_t)
        return tau

    @wp.func
    def herschel_bulkley(F: mat, C: mat, K: float_t, tau_y: float_t, k: float_t, n: float_t, m: float_t,
                         eta_max: float_t, gamma: float_t) -> mat:
        J = wp.determinant(F)
        Dd = dev_rate(C)
        rate = wp.sqrt(float_t(2.0) * wp.ddot(Dd, Dd) + float_t(1e-12))
        # (1 − exp(−m γ̇))/γ̇ tends to m as γ̇ → 0; the +1e-12 above keeps the root differentiable.
        yield_part = tau_y * (float_t(1.0) - wp.exp(-m * rate)) / rate
        eta = wp.min(k * wp.pow(rate, n - float_t(1.0)) + yield_part, eta_max)
        return pressure_tau(J, K, gamma) * wp.identity(n=dim, dtype=float_t) + J * float_t(2.0) * eta * Dd

    @wp.func
    def cbrt32(J: wp.float32) -> wp.float32:
        """Cube root of J > 0 in float32 without libm's cbrtf (a call of about 25 ns per particle
        on a CPU, an eighth of the fluid substep): the exponent divided by three through the bit
        pattern (within 4 %), then two Halley steps in float64 (cubic convergence, error below
        1e-12, rounded once to float32)."""
        y = wp.float64(wp.cast(wp.cast(J, wp.int32) / 3 + 709921077, wp.float32))
        j = wp.float64(J)
        y3 = y * y * y
        y = y * (y3 + wp.float64(2.0) * j) / (wp.float64(2.0) * y3 + j)
        y3 = y * y * y
        y = y * (y3 + wp.float64(2.0) * j) / (wp.float64(2.0) * y3 + j)
        return wp.float32(y)

    @wp.func_grad(cbrt32)
    def adj_cbrt32(J: wp.float32, adj_ret: wp.float32):
        y = cbrt32(J)
        wp.adjoint[J] += adj_ret / (wp.float32(3.0) * y * y)

    @wp.func
    def volumetric(F: mat) -> mat:
        """J^{1/d} I with J = det F: a fluid particle keeps its volume only."""
        J = wp.max(wp.determinant(F), float_t(1e-6))
        # cbrt/sqrt rather than pow(J, 1/d): the same value, several times cheaper per particle
        if wp.static(dim == 3):
            if wp.static(float_t == wp.float32):
                return cbrt32(J) * wp.identity(n=dim, dtype=float_t)
            else:
                return wp.cbrt(J) * wp.identity(n=dim, dtype=float_t)
        else:
            return wp.sqrt(J) * wp.identity(n=dim, dtype=float_t)

    @wp.func
    def with_det(J: float_t) -> mat:
        """diag(J, 1, ..., 1): a deformation gradient whose determinant is exactly J. The untaped
        substeps of fluid-only scenes carry J = det F and call the laws above with it (a few
        flops per particle, and the taped path's code stays as it is)."""
        M = wp.identity(n=dim, dtype=float_t)
        M[0, 0] = J
        return M

    @wp.func
    def pressure_derivs(J: float_t, K: float_t, gamma: float_t):
        """(∂a/∂J, ∂a/∂K) of a(J) = `pressure_tau`."""
        dJ = K
        dK = J - float_t(1.0)
        if gamma != float_t(1.0):
            Jg = wp.pow(J, -gamma)
            dJ = K * Jg - K / gamma * (Jg - float_t(1.0))
            dK = -J / gamma * (Jg - float_t(1.0))
        return dJ, dK

    @wp.func
    def newtonian_adjoint(J: float_t, C: mat, K: float_t, eta: float_t, gamma: float_t, zeta: float_t, G: mat):
        """(∂J, ∂C, ∂K, ∂η, ∂ζ) of τ = `newtonian` as a function of J = det F, for the incoming gradient G
        (equations in `taped_kernels`' docstring; ∂η and ∂ζ also where η = 0 or ζ = 0)."""
        trG = wp.trace(G)
        da_dJ, da_dK = pressure_derivs(J, K, gamma)
        GD = wp.ddot(G, dev_rate(C))
        trC = wp.trace(C)
        dJ = da_dJ * trG + float_t(2.0) * eta * GD + zeta * trC * trG
        dC = (float_t(2.0) * eta * J) * dev_rate(G) + (zeta * J * trG) * wp.identity(n=dim, dtype=float_t)
        return dJ, dC, da_dK * trG, float_t(2.0) * J * GD, J * trC * trG

    return SimpleNamespace(newtonian=newtonian, herschel_bulkley=herschel_bulkley, volumetric=volumetric,
                           with_det=with_det, dev_rate=dev_rate, newtonian_adjoint=newtonian_adjoint)
