"""Taichi kernels of sources and forces: fans, buoyancy and dissipation.

Fan k's row of the action (``fans[k, :]``) holds its center [m], direction, strength
[m/s²], radius [m], mix fraction and emitted smoke values; see `GasSimulator.fan_action`.
"""

import taichi as ti

nd = ti.types.ndarray()


class ForceKernels:
    """Mixin of `GasArrays` (uses `SamplingFuncs`)."""

    @ti.kernel
    def smoke_sources(self, q_adv: nd, q: nd, fans: nd, smoke_dissipation: nd, fluid: nd, s: ti.i32, dt_: ti.f64,
                      h_: ti.f64):
        """q[s+1] = decay · q_adv[s], then each fan relaxes it toward its emitted value by mix · w."""
        for I in ti.grouped(fluid):
            dt = ti.cast(dt_, self.real)
            h = ti.cast(h_, self.real)
            val = ti.Vector.zero(self.real, self.C)
            if fluid[I] > 0:
                val = q_adv[s, I] * ti.exp(-smoke_dissipation[0] * dt)
                xm = (ti.cast(I, self.real) + 0.5) * h
                for k in ti.static(range(self.fan_count)):
                    m = fans[k, self.col_mix] * self.fan_weight(fans, xm, k, 1e-6 * h * h)
                    for c in ti.static(range(self.C)):
                        val[c] += m * (fans[k, self.col_emit + c] - val[c])
            q[s + 1, I] = val

    @ti.kernel
    def velocity_forces(self, v_adv: nd, q: nd, fans: nd, buoyancy: nd, velocity_dissipation: nd, v_star: nd,
                        open_lo: nd, fluid: nd, s: ti.i32, dt_: ti.f64, h_: ti.f64):
        """v*[s] = decay · v_adv[s] + dt · (fan jets + buoyancy), zero on closed faces.

        Buoyancy on a vertical face uses the mean of smoke channel 0 in the two cells it
        separates, taken after this substep's smoke update (Boussinesq, ambient 0).
        """
        for I in ti.grouped(fluid):
            dt = ti.cast(dt_, self.real)
            h = ti.cast(h_, self.real)
            decay = ti.exp(-velocity_dissipation[0] * dt)
            u = ti.Vector.zero(self.real, self.dim)
            for d in ti.static(range(self.dim)):
                e = ti.Vector.unit(self.dim, d, ti.i32)
                val = v_adv[s, I][d] * decay
                xm = (ti.cast(I, self.real) + 0.5 - 0.5 * ti.cast(e, self.real)) * h
                for k in ti.static(range(self.fan_count)):
                    jet = fans[k, self.col_strength] * fans[k, self.dim + d]
                    val += dt * self.fan_weight(fans, xm, k, 1e-6 * h * h) * jet
                if ti.static(d == self.up_axis):
                    Im = ti.max(I - e, 0)
                    q_face = 0.5 * (q[s + 1, I][0] + q[s + 1, Im][0])
                    val += dt * buoyancy[0] * q_face
                u[d] = val * open_lo[I][d]
            v_star[s, I] = u
