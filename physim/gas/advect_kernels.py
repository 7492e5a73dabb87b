"""Taichi kernels of advection: semi-Lagrangian and MacCormack, for the smoke and the face velocities.

A substep first averages the face velocities to cell centers (``vc[s]``), then traces
the characteristic of every sample point into ``foot[s, k]`` (k = d < dim: the faces
along axis d; k = dim: the cell centers; k + dim + 1: MacCormack's backward pass,
traced with −dtg), then interpolates. Splitting the work this way keeps each kernel,
and its reverse-mode derivative, small. Each kernel reads slice s of its sources and
writes slice s of a different array, so nothing is overwritten after it is read
(Taichi's autodiff rule). dtg = dt/h is the time step in grid units per (m/s).
"""

import taichi as ti

nd = ti.types.ndarray()


class AdvectKernels:
    """Mixin of `GasArrays` (uses `SamplingFuncs`)."""

    @ti.kernel
    def center_velocity(self, v: nd, vc: nd, fluid: nd, s: ti.i32):
        """vc[s] = mean of the two faces of each cell per axis."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            u = ti.Vector.zero(self.real, self.dim)
            for d in ti.static(range(self.dim)):
                up = self.face_value(v, s, d, I + ti.Vector.unit(self.dim, d, ti.i32), hi)
                u[d] = 0.5 * (v[s, I][d] + up)
            vc[s, I] = u

    @ti.kernel
    def trace(self, vc: nd, foot: nd, fluid: nd, s: ti.i32, k: ti.i32, d: ti.i32, dtg_: ti.f64):
        """foot[s, k] = foot of the characteristic through each sample point: faces along d, or cell centers (d = dim).

        d is a runtime argument, so one compiled kernel traces every kind of sample point.
        """
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            dtg = ti.cast(dtg_, self.real)
            x = ti.cast(I, self.real) + 0.5
            for a in ti.static(range(self.dim)):
                if a == d:
                    x[a] -= 0.5
            foot[s, k, I] = self.backtrace(vc, s, x, dtg, fluid, hi)

    @ti.kernel
    def interp_smoke_at(self, src: nd, foot: nd, dst: nd, fluid: nd, s: ti.i32, k: ti.i32):
        """dst[s] = src[s] at the foot points foot[s, k], on fluid cells (semi-Lagrangian step)."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            val = ti.Vector.zero(self.real, self.C)
            if fluid[I] > 0:
                val = self.interp_cells(src, s, foot[s, k, I], fluid, hi, self.C)
            dst[s, I] = val

    @ti.kernel
    def interp_component_at(self, src: nd, foot: nd, dst: nd, open_lo: nd, fluid: nd, s: ti.i32, k: ti.i32,
                            d: ti.template()):
        """Component d of dst[s] = component d of src[s] at the foot points foot[s, k] of the d-faces."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            dst[s, I][d] = self.interp_component(src, s, d, foot[s, k, I], fluid, hi) * open_lo[I][d]

    @ti.kernel
    def maccormack_smoke(self, q: nd, q_fwd: nd, q_bwd: nd, foot: nd, q_adv: nd, fluid: nd, s: ti.i32, k: ti.i32):
        """q_adv = q̂ + (q − q̃)/2, clamped to the extrema of q around the forward foot (Selle et al. 2008)."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            val = ti.Vector.zero(self.real, self.C)
            if fluid[I] > 0:
                lo, up = self.smoke_minmax(q, s, foot[s, k, I], fluid, hi)
                corrected = q_fwd[s, I] + 0.5 * (q[s, I] - q_bwd[s, I])
                val = ti.min(ti.max(corrected, lo), up)
            q_adv[s, I] = val

    @ti.kernel
    def maccormack_component(self, v: nd, v_fwd: nd, v_bwd: nd, foot: nd, v_adv: nd, open_lo: nd, fluid: nd,
                             s: ti.i32, k: ti.i32, d: ti.template()):
        """MacCormack correction of face component d, clamped to the extrema of v around its forward foot."""
        for I in ti.grouped(fluid):
            hi = self.last_cell(fluid)
            lo, up = self.component_minmax(v, s, d, foot[s, k, I], fluid, hi)
            corrected = v_fwd[s, I][d] + 0.5 * (v[s, I][d] - v_bwd[s, I][d])
            v_adv[s, I][d] = ti.min(ti.max(corrected, lo), up) * open_lo[I][d]
