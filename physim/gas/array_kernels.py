"""Taichi arrays of one gas simulator, with the kernels that load and store a control step.

Slice s of ``v``, ``q`` and ``p`` holds the state after s substeps; the intermediates
of substep s (cell-centered velocity, foot points, advected, forced, divergence,
MacCormack passes) have their own slice s. Every array is written once per control
step, so Taichi's reverse-mode autodiff of each kernel is exact. All data lives in
ndarrays passed to the kernels as arguments (see `physim.gas.port_kernels`).

Memory per cell, 3D, one substep, semi-Lagrangian, one smoke channel: 43 values with a
gradient (two state slices of 5, intermediates 23 of which 12 are foot points, inputs
and outputs 10), so 86 counting their gradients, plus 9 for the masks and 2 for the
Jacobi scratch (6 for CG): ~97 values, 390 bytes in float32. FluidLab's 128³ takes
~0.8 GB, its 128 × 7 × 128 slab 45 MB, independently of the number of Jacobi sweeps.
MacCormack adds 20 values with gradients per cell (160 bytes in float32), each further substep 28.
"""

import numpy as np
import taichi as ti

from physim.gas.advect_kernels import AdvectKernels
from physim.gas.force_kernels import ForceKernels
from physim.gas.port_kernels import Port
from physim.gas.pressure_kernels import CGSolve, JacobiSolve, PressureKernels
from physim.gas.sampling_kernels import SamplingFuncs

nd = ti.types.ndarray()

_BACKTRACE_ORDER = {"euler": 1, "rk2": 2, "rk3": 3}


def face_masks(solid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fluid cells and open faces of a solid mask.

    Returns:
        fluid: True on fluid cells, shape res.
        open_lo: open_lo[I, d] is True when the face on the low side of I along d joins
            two fluid cells (box walls are closed), shape (*res, dim).
        open_hi: the same for the face on the high side, shape (*res, dim).
    """
    fluid = ~solid
    dim = solid.ndim
    open_lo = np.zeros((*solid.shape, dim), dtype=bool)
    open_hi = np.zeros_like(open_lo)
    for d in range(dim):
        lo = [slice(None)] * dim
        hi = [slice(None)] * dim
        lo[d], hi[d] = slice(1, None), slice(None, -1)
        both = fluid[tuple(lo)] & fluid[tuple(hi)]
        open_lo[(*lo, d)] = both
        open_hi[(*hi, d)] = both
    return fluid, open_lo, open_hi


@ti.data_oriented
class GasArrays(SamplingFuncs, AdvectKernels, ForceKernels, PressureKernels):
    """All arrays of one simulator, allocated once; see the module docstring for the layout."""

    def __init__(self, cfg, solid: np.ndarray, torch_dtype):
        res, S, dim, C = tuple(int(n) for n in cfg.resolution), cfg.substeps, cfg.dim, cfg.smoke_channels
        self.S, self.dim, self.C = S, dim, C
        self.real = real = ti.f64 if cfg.dtype == "float64" else ti.f32
        np_real = np.float64 if cfg.dtype == "float64" else np.float32
        # Compile-time switches of the kernels (everything else is a runtime argument or an array shape).
        self.corners = (2,) * dim
        self.backtrace_order = _BACKTRACE_ORDER[cfg.backtrace]
        self.maccormack = cfg.advection == "maccormack"
        self.has_solids = bool(solid.any())
        self.fan_profile = cfg.fan_profile
        self.fan_count = cfg.fan_count
        self.up_axis = cfg.up_axis
        self.col_strength, self.col_radius, self.col_mix, self.col_emit = 2 * dim, 2 * dim + 1, 2 * dim + 2, \
            2 * dim + 3

        def arr(n, shape, grad=True):
            return ti.ndarray(real if n == 0 else ti.types.vector(n, real), shape=shape, needs_grad=grad)

        # State slices 0..S and the intermediates of each substep.
        self.v, self.q, self.p = arr(dim, (S + 1, *res)), arr(C, (S + 1, *res)), arr(0, (S + 1, *res))
        self.v_adv, self.v_star, self.q_adv, self.div = arr(dim, (S, *res)), arr(dim, (S, *res)), \
            arr(C, (S, *res)), arr(0, (S, *res))
        self.vc = arr(dim, (S, *res))
        self.foot = arr(dim, (S, (dim + 1) * (2 if self.maccormack else 1), *res))
        self.intermediates = [self.v, self.q, self.p, self.v_adv, self.v_star, self.q_adv, self.div, self.vc,
                              self.foot]
        if self.maccormack:
            self.q_fwd, self.q_bwd = arr(C, (S, *res)), arr(C, (S, *res))
            self.v_fwd, self.v_bwd = arr(dim, (S, *res)), arr(dim, (S, *res))
            self.intermediates += [self.q_fwd, self.q_bwd, self.v_fwd, self.v_bwd]
        # Torch-facing inputs and outputs.
        self.v_in, self.q_in, self.p_in = arr(dim, res), arr(C, res), arr(0, res)
        self.v_out, self.q_out, self.p_out = arr(dim, res), arr(C, res), arr(0, res)
        self.fans = arr(0, (max(self.fan_count, 1), cfg.action_width))
        self.buoyancy, self.smoke_dissipation, self.velocity_dissipation = arr(0, (1,)), arr(0, (1,)), arr(0, (1,))

        def port(a, n):
            return Port(a, n, real, torch_dtype)

        self.ports_in = {"velocity": port(self.v_in, dim), "smoke": port(self.q_in, C),
                         "pressure": port(self.p_in, 0), "fans": port(self.fans, 0),
                         "buoyancy": port(self.buoyancy, 0), "smoke_dissipation": port(self.smoke_dissipation, 0),
                         "velocity_dissipation": port(self.velocity_dissipation, 0)}
        self.ports_out = {"velocity": port(self.v_out, dim), "smoke": port(self.q_out, C),
                          "pressure": port(self.p_out, 0)}
        # Static geometry (no gradients).
        fluid, open_lo, open_hi = face_masks(solid)
        n_open = open_lo.sum(-1) + open_hi.sum(-1)
        self.fluid_count = int(fluid.sum())
        self.fluid, self.inv_n = arr(0, res, False), arr(0, res, False)
        self.open_lo, self.open_hi = arr(dim, res, False), arr(dim, res, False)
        self.n_open = ti.ndarray(ti.i32, shape=res)
        self.fluid.from_numpy(fluid.astype(np_real))
        self.open_lo.from_numpy(open_lo.astype(np_real))
        self.open_hi.from_numpy(open_hi.astype(np_real))
        self.n_open.from_numpy(n_open.astype(np.int32))
        self.inv_n.from_numpy(np.where(fluid & (n_open > 0), 1.0 / np.maximum(n_open, 1), 0.0).astype(np_real))
        # Scratch of the pressure solvers: Jacobi ping-pong uses 2, CG 6 (forward and adjoint alike).
        self.scratch = [arr(0, res, False) for _ in range(2 if cfg.solver == "jacobi" else 6)]
        self.solver = JacobiSolve(self, cfg) if cfg.solver == "jacobi" else CGSolve(self, cfg)

    def grad_fields(self) -> list:
        """Everything with a gradient that a control step touches (TaichiOp zeroes them before backward)."""
        return [*self.ports_in.values(), *self.ports_out.values(), *self.intermediates]

    @ti.kernel
    def load(self, v_in: nd, q_in: nd, p_in: nd, v: nd, q: nd, p: nd, open_lo: nd, fluid: nd):
        """Slice 0 of the state from the inputs; closed faces and solid cells are zeroed."""
        for I in ti.grouped(fluid):
            v[0, I] = v_in[I] * open_lo[I]
            q[0, I] = q_in[I] * fluid[I]
            p[0, I] = p_in[I] * fluid[I]

    @ti.kernel
    def store(self, v: nd, q: nd, p: nd, v_out: nd, q_out: nd, p_out: nd, fluid: nd, s: ti.i32):
        for I in ti.grouped(fluid):
            v_out[I] = v[s, I]
            q_out[I] = q[s, I]
            p_out[I] = p[s, I]

    @ti.kernel
    def load_projection(self, v_in: nd, p_in: nd, v_star: nd, p: nd, open_lo: nd, fluid: nd):
        """Projection only: the input velocity is v*[0], the input potential the warm start."""
        for I in ti.grouped(fluid):
            v_star[0, I] = v_in[I] * open_lo[I]
            p[0, I] = p_in[I] * fluid[I]

    @ti.kernel
    def store_projection(self, v: nd, p: nd, v_out: nd, p_out: nd, fluid: nd):
        for I in ti.grouped(fluid):
            v_out[I] = v[1, I]
            p_out[I] = p[1, I]

    # -- programs ------------------------------------------------------------------------------
    def control_step(self, run, dt: float, h: float, restoring: bool = False) -> None:
        """Launch one control step through `run` (a `KernelRecorder`).

        With `restoring` (a re-run that only restores intermediates for a backward pass),
        the last substep's pressure solve is recorded for its adjoint but not run: what
        follows it is linear and needs none of its output.
        """
        run(self.load, self.v_in, self.q_in, self.p_in, self.v, self.q, self.p, self.open_lo, self.fluid)
        for s in range(self.S):
            self.substep(run, s, dt, h, skip_solve=restoring and s == self.S - 1)
        run(self.store, self.v, self.q, self.p, self.v_out, self.q_out, self.p_out, self.fluid, self.S)

    def projection(self, run, h: float, restoring: bool = False) -> None:
        """Launch a projection of ``v_in`` alone (warm-started from ``p_in``) into ``v_out``, ``p_out``."""
        run(self.load_projection, self.v_in, self.p_in, self.v_star, self.p, self.open_lo, self.fluid)
        self.project(run, 0, h, skip_solve=restoring)
        run(self.store_projection, self.v, self.p, self.v_out, self.p_out, self.fluid)

    def substep(self, run, s: int, dt: float, h: float, skip_solve: bool = False) -> None:
        """Launch substep s: advect, sources and forces, then project."""
        dtg, dim, fluid = dt / h, self.dim, self.fluid
        back = dim + 1  # offset of the backward pass's foot points
        run(self.center_velocity, self.v, self.vc, fluid, s)
        for d in range(dim + 1):
            run(self.trace, self.vc, self.foot, fluid, s, d, d, dtg)
        if self.maccormack:
            for d in range(dim + 1):
                run(self.trace, self.vc, self.foot, fluid, s, back + d, d, -dtg)
            run(self.interp_smoke_at, self.q, self.foot, self.q_fwd, fluid, s, dim)
            run(self.interp_smoke_at, self.q_fwd, self.foot, self.q_bwd, fluid, s, back + dim)
            run(self.maccormack_smoke, self.q, self.q_fwd, self.q_bwd, self.foot, self.q_adv, fluid, s, dim)
            for d in range(dim):
                run(self.interp_component_at, self.v, self.foot, self.v_fwd, self.open_lo, fluid, s, d, d)
                run(self.interp_component_at, self.v_fwd, self.foot, self.v_bwd, self.open_lo, fluid, s, back + d, d)
                run(self.maccormack_component, self.v, self.v_fwd, self.v_bwd, self.foot, self.v_adv, self.open_lo,
                    fluid, s, d, d)
        else:
            run(self.interp_smoke_at, self.q, self.foot, self.q_adv, fluid, s, dim)
            for d in range(dim):
                run(self.interp_component_at, self.v, self.foot, self.v_adv, self.open_lo, fluid, s, d, d)
        run(self.smoke_sources, self.q_adv, self.q, self.fans, self.smoke_dissipation, fluid, s, dt, h)
        run(self.velocity_forces, self.v_adv, self.q, self.fans, self.buoyancy, self.velocity_dissipation,
            self.v_star, self.open_lo, fluid, s, dt, h)
        self.project(run, s, h, skip_solve)

    def project(self, run, s: int, h: float, skip_solve: bool = False) -> None:
        """Launch the projection of v*[s] into v[s+1] (divergence, pressure solve, gradient subtraction)."""
        run(self.divergence, self.v_star, self.div, self.fluid, s, 1.0 / h)
        run(self.solver.adjoint_only if skip_solve else self.solver, s)
        run(self.subtract_gradient, self.v_star, self.p, self.v, self.open_lo, self.fluid, s, 1.0 / h)
