"""Taichi functions that sample the staggered grid: interpolation, back-tracing, fan weights.

Positions are in grid units: cell I spans [I, I + 1] along every axis, so its center
is I + 0.5 and the face on its low side along axis d is at I + 0.5 − 0.5·e_d.
Characteristics are traced through the cell-centered velocity ``vc`` (the mean of each
cell's faces) with one multilinear stencil per sample, rather than through each face
grid separately: the kernels, and above all their reverse-mode derivatives, stay small
enough to compile in seconds. All functions work in 2D and 3D (loops over axes and
corners are unrolled at compile time) and take the grid's arrays as arguments
(Taichi ndarrays), so one compiled kernel serves every grid size. They are
differentiable almost everywhere (the floor of a position has no gradient; the
interpolation weights do). ``hi`` is the index of the last cell per axis. Next to
solid cells, stencil corners inside solids are left out and the weights renormalised,
so a solid region bounds the flow exactly like the box walls do.
"""

import taichi as ti


class SamplingFuncs:
    """Mixin of `GasArrays`: needs ``self.dim, self.real, self.C, self.corners`` and the static switches."""

    @ti.func
    def last_cell(self, m: ti.template()):
        """Index of the last cell per axis of a cell array m, as an integer vector."""
        hi = ti.Vector.zero(ti.i32, self.dim)
        for k in ti.static(range(self.dim)):
            hi[k] = m.shape[k] - 1
        return hi

    @ti.func
    def lerp_weight(self, off, f):
        """Multilinear weight of corner `off` (0/1 per axis) at fractions f."""
        w = ti.cast(1.0, self.real)
        for k in ti.static(range(self.dim)):
            w *= off[k] * f[k] + (1 - off[k]) * (1.0 - f[k])
        return w

    @ti.func
    def face_value(self, vf: ti.template(), s, d: ti.template(), J, hi):
        """Component d of face J of ``vf[s]``; the face at index hi[d] + 1 (the high wall) is 0."""
        Jc = ti.min(ti.max(J, 0), hi)
        inside = ti.cast(J[d] <= hi[d], self.real)
        return vf[s, Jc][d] * inside

    @ti.func
    def face_weight(self, fluid: ti.template(), d: ti.template(), J, hi):
        """1 if the d-face J touches a fluid cell, else 0 (a face inside a solid is no sample of the flow).

        A closed face between fluid and solid keeps its weight: its zero normal velocity is
        the no-through condition. J may be the high wall face (J[d] = hi[d] + 1).
        """
        e = ti.Vector.unit(self.dim, d, ti.i32)
        above = fluid[ti.min(ti.max(J, 0), hi)] * ti.cast(J[d] <= hi[d], self.real)
        below = fluid[ti.min(ti.max(J - e, 0), hi)] * ti.cast(J[d] >= 1, self.real)
        return ti.max(above, below)

    @ti.func
    def face_base(self, d: ti.template(), x, hi):
        """Lower corner and fractions of the stencil of the d-faces at x (d-faces run 0..hi[d] + 1 along d)."""
        g = x - 0.5
        g[d] += 0.5
        ghi = hi + ti.Vector.unit(self.dim, d, ti.i32)
        g = ti.min(ti.max(g, 0.0), ti.cast(ghi, self.real))
        base = ti.min(ti.cast(ti.floor(g), ti.i32), ghi - 1)
        return base, g - ti.cast(base, self.real)

    @ti.func
    def interp_component(self, vf: ti.template(), s, d: ti.template(), x, fluid: ti.template(), hi):
        """Multilinear interpolation of velocity component d of ``vf[s]`` at position x.

        With solids, faces buried in solid cells are left out and the weights renormalised,
        so a solid layer acts like the box walls (free slip) rather than as still air.
        """
        base, f = self.face_base(d, x, hi)
        val = ti.cast(0.0, self.real)
        wsum = ti.cast(0.0, self.real)
        for off in ti.static(ti.grouped(ti.ndrange(*self.corners))):
            w = self.lerp_weight(off, f)
            if ti.static(self.has_solids):
                w *= self.face_weight(fluid, d, base + off, hi)
            val += w * self.face_value(vf, s, d, base + off, hi)
            wsum += w
        if ti.static(self.has_solids):
            val /= ti.max(wsum, 1e-12)
        return val

    @ti.func
    def cell_base(self, x, hi):
        """Lower corner and fractions of the cell-centered interpolation stencil at x."""
        g = ti.min(ti.max(x - 0.5, 0.0), ti.cast(hi, self.real))
        base = ti.min(ti.cast(ti.floor(g), ti.i32), hi - 1)
        return base, g - ti.cast(base, self.real)

    @ti.func
    def interp_cells(self, f: ti.template(), s, x, fluid: ti.template(), hi, n: ti.template()):
        """n-vector ``f[s]`` at x, interpolated from the cell centers of fluid cells only.

        Used for the smoke (solid cells hold none) and for the cell-centered velocity that
        traces characteristics. With solids, the weights are renormalised over the fluid
        corners; their sum is > 0 unless every corner is solid, and then the sum is 0 too.
        """
        base, w_f = self.cell_base(x, hi)
        acc = ti.Vector.zero(self.real, n)
        wsum = ti.cast(0.0, self.real)
        for off in ti.static(ti.grouped(ti.ndrange(*self.corners))):
            w = self.lerp_weight(off, w_f)
            if ti.static(self.has_solids):
                w *= fluid[base + off]
            acc += w * f[s, base + off]
            wsum += w
        if ti.static(self.has_solids):
            acc /= ti.max(wsum, 1e-12)
        return acc

    @ti.func
    def backtrace(self, vc: ti.template(), s, x, dtg, fluid: ti.template(), hi):
        """Foot of the characteristic through x, traced back by dtg = dt/h through ``vc[s]``."""
        y = x
        if ti.static(self.backtrace_order == 1):
            y = x - dtg * self.interp_cells(vc, s, x, fluid, hi, self.dim)
        elif ti.static(self.backtrace_order == 2):
            k1 = self.interp_cells(vc, s, x, fluid, hi, self.dim)
            k2 = self.interp_cells(vc, s, x - 0.5 * dtg * k1, fluid, hi, self.dim)
            y = x - dtg * k2
        else:
            # Ralston's third-order scheme (FluidLab's); weights 2/9, 3/9, 4/9 written exactly.
            k1 = self.interp_cells(vc, s, x, fluid, hi, self.dim)
            k2 = self.interp_cells(vc, s, x - 0.5 * dtg * k1, fluid, hi, self.dim)
            k3 = self.interp_cells(vc, s, x - 0.75 * dtg * k2, fluid, hi, self.dim)
            y = x - dtg * (2.0 * k1 + 3.0 * k2 + 4.0 * k3) / 9.0
        return y

    @ti.func
    def smoke_minmax(self, qf: ti.template(), s, x, fluid: ti.template(), hi):
        """Per-channel extrema of ``qf[s]`` over the fluid corners of the stencil at x (MacCormack limiter)."""
        base, _f = self.cell_base(x, hi)
        lo = ti.Vector.zero(self.real, self.C) + 1e30
        up = ti.Vector.zero(self.real, self.C) - 1e30
        for off in ti.static(ti.grouped(ti.ndrange(*self.corners))):
            if fluid[base + off] > 0:
                lo = ti.min(lo, qf[s, base + off])
                up = ti.max(up, qf[s, base + off])
        return lo, up

    @ti.func
    def component_minmax(self, vf: ti.template(), s, d: ti.template(), x, fluid: ti.template(), hi):
        """Extrema of velocity component d of ``vf[s]`` over the stencil at x (MacCormack limiter)."""
        base, _f = self.face_base(d, x, hi)
        lo = ti.cast(1e30, self.real)
        up = ti.cast(-1e30, self.real)
        for off in ti.static(ti.grouped(ti.ndrange(*self.corners))):
            v = self.face_value(vf, s, d, base + off, hi)
            if self.face_weight(fluid, d, base + off, hi) > 0:
                lo = ti.min(lo, v)
                up = ti.max(up, v)
        return lo, up

    @ti.func
    def fan_weight(self, fans: ti.template(), xm, k: ti.template(), eps2):
        """Influence of fan k at the point xm [m]: exp(−|x − c|/r) or exp(−|x − c|²/r²).

        eps2 [m²] is a tiny floor under the squared distance that keeps the exponential
        profile differentiable at the fan's center.
        """
        d2 = ti.cast(0.0, self.real)
        for a in ti.static(range(self.dim)):
            diff = xm[a] - fans[k, a]
            d2 += diff * diff
        r = fans[k, self.col_radius]
        w = ti.cast(0.0, self.real)
        if ti.static(self.fan_profile == "exponential"):
            w = ti.exp(-ti.sqrt(d2 + eps2) / r)
        else:
            w = ti.exp(-d2 / (r * r))
        return w
