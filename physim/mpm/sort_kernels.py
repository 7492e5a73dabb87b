"""Particle sorting by grid cell, and the gathers/scatters between id order and cell order.

Sorting happens inside the differentiable substep operation: the permutation is an
integer array (no gradient). The adjoint of a gather by a permutation is a scatter of the
gradients and that of a scatter a gather (one line per particle, no atomics: the first n
entries of `order` are a permutation): `gather_adjoint`, `scatter_adjoint` and
`gather_mat_adjoint` are those, hand-written for the taped path.
"""

import functools
from types import SimpleNamespace

import warp as wp

from physim.mpm.kernel_types import KernelTypes
from physim.mpm.materials.fluid_kernels import make_fluid_funcs

__all__ = ["make_sort_adjoint_kernels", "make_sort_kernels"]


@functools.cache
def make_sort_kernels(T: KernelTypes):
    """Kernels ``cell_keys, gather, gather_mat, scatter, gather_static, gather_j, scatter_j``."""
    dim, float_t, vec, mat = T.dim, T.float, T.vec, T.mat
    fl = make_fluid_funcs(T)

    @wp.kernel
    def cell_keys(x: wp.array(dtype=vec), res: wp.vec3i, inv_dx: float_t,
                  # outputs
                  keys: wp.array(dtype=wp.int32), values: wp.array(dtype=wp.int32)):
        """Linear index of each particle's cell (clamped into the grid) and the particle id."""
        p = wp.tid()
        xs = x[p] * inv_dx
        i = wp.clamp(int(xs[0]), 0, res[0] - 1)
        j = wp.clamp(int(xs[1]), 0, res[1] - 1)
        key = i * res[1] + j
        if wp.static(dim == 3):
            key = key * res[2] + wp.clamp(int(xs[2]), 0, res[2] - 1)
        keys[p] = key
        values[p] = p

    @wp.kernel
    def gather(order: wp.array(dtype=wp.int32), x: wp.array(dtype=vec), v: wp.array(dtype=vec),
               C: wp.array(dtype=mat), F: wp.array(dtype=mat),
               # outputs
               xs: wp.array(dtype=vec), vs: wp.array(dtype=vec), Cs: wp.array(dtype=mat), Fs: wp.array(dtype=mat)):
        """Particle state in cell order."""
        t = wp.tid()
        p = order[t]
        xs[t] = x[p]
        vs[t] = v[p]
        Cs[t] = C[p]
        Fs[t] = F[p]

    @wp.kernel
    def gather_mat(order: wp.array(dtype=wp.int32), a: wp.array(dtype=mat),
                   # outputs
                   out: wp.array(dtype=mat)):
        t = wp.tid()
        out[t] = a[order[t]]

    @wp.kernel
    def scatter(order: wp.array(dtype=wp.int32), xs: wp.array(dtype=vec), vs: wp.array(dtype=vec),
                Cs: wp.array(dtype=mat), Fs: wp.array(dtype=mat),
                # outputs
                x: wp.array(dtype=vec), v: wp.array(dtype=vec), C: wp.array(dtype=mat), F: wp.array(dtype=mat)):
        """Back to particle-id order."""
        t = wp.tid()
        p = order[t]
        x[p] = xs[t]
        v[p] = vs[t]
        C[p] = Cs[t]
        F[p] = Fs[t]

    @wp.kernel
    def gather_static(order: wp.array(dtype=wp.int32), body: wp.array(dtype=wp.int32),
                      vol: wp.array(dtype=float_t), rslot: wp.array(dtype=wp.int32),
                      # outputs
                      body_s: wp.array(dtype=wp.int32), vol_s: wp.array(dtype=float_t),
                      rslot_s: wp.array(dtype=wp.int32), ridx_s: wp.array(dtype=wp.int32)):
        """Per-particle constants in cell order, and the sorted position of each rigid particle."""
        t = wp.tid()
        p = order[t]
        body_s[t] = body[p]
        vol_s[t] = vol[p]
        r = rslot[p]
        rslot_s[t] = r
        if r >= 0:
            ridx_s[r] = t

    @wp.kernel
    def gather_j(order: wp.array(dtype=wp.int32), x: wp.array(dtype=vec), v: wp.array(dtype=vec),
                 C: wp.array(dtype=mat), F: wp.array(dtype=mat),
                 # outputs
                 xs: wp.array(dtype=vec), vs: wp.array(dtype=vec), Cs: wp.array(dtype=mat),
                 Js: wp.array(dtype=float_t)):
        """`gather` of a fluid-only scene: J = det F instead of F (untaped substeps only)."""
        t = wp.tid()
        p = order[t]
        xs[t] = x[p]
        vs[t] = v[p]
        Cs[t] = C[p]
        Js[t] = wp.determinant(F[p])

    @wp.kernel
    def scatter_j(order: wp.array(dtype=wp.int32), xs: wp.array(dtype=vec), vs: wp.array(dtype=vec),
                  Cs: wp.array(dtype=mat), Js: wp.array(dtype=float_t),
                  # outputs
                  x: wp.array(dtype=vec), v: wp.array(dtype=vec), C: wp.array(dtype=mat), F: wp.array(dtype=mat)):
        """`scatter` of a fluid-only scene: F = J^{1/d} I, as the fluids' projection forms it."""
        t = wp.tid()
        p = order[t]
        x[p] = xs[t]
        v[p] = vs[t]
        C[p] = Cs[t]
        F[p] = fl.volumetric(fl.with_det(Js[t]))

    return cell_keys, gather, gather_mat, scatter, gather_static, gather_j, scatter_j


@functools.cache
def make_sort_adjoint_kernels(T: KernelTypes):
    """Hand-written adjoints of the taped `gather`, `scatter` and `gather_mat`: ``gather_adjoint,
    scatter_adjoint, gather_mat_adjoint`` (a namespace)."""
    vec, mat = T.vec, T.mat

    @wp.kernel
    def gather_adjoint(order: wp.array(dtype=wp.int32), xs_grad: wp.array(dtype=vec), vs_grad: wp.array(dtype=vec),
                       Cs_grad: wp.array(dtype=mat), Fs_grad: wp.array(dtype=mat), want: wp.vec4i,
                       # outputs (accumulated)
                       x_grad: wp.array(dtype=vec), v_grad: wp.array(dtype=vec), C_grad: wp.array(dtype=mat),
                       F_grad: wp.array(dtype=mat)):
        """Adjoint of `gather`: the cell-order gradients back to particle-id order (`want[i]`: input i has one)."""
        t = wp.tid()
        p = order[t]
        if want[0] != 0:
            x_grad[p] = x_grad[p] + xs_grad[t]
        if want[1] != 0:
            v_grad[p] = v_grad[p] + vs_grad[t]
        if want[2] != 0:
            C_grad[p] = C_grad[p] + Cs_grad[t]
        if want[3] != 0:
            F_grad[p] = F_grad[p] + Fs_grad[t]

    @wp.kernel
    def scatter_adjoint(order: wp.array(dtype=wp.int32), x_grad: wp.array(dtype=vec), v_grad: wp.array(dtype=vec),
                        C_grad: wp.array(dtype=mat), F_grad: wp.array(dtype=mat),
                        # outputs (accumulated)
                        xs_grad: wp.array(dtype=vec), vs_grad: wp.array(dtype=vec), Cs_grad: wp.array(dtype=mat),
                        Fs_grad: wp.array(dtype=mat)):
        """Adjoint of `scatter`: the particle-id-order gradients in cell order."""
        t = wp.tid()
        p = order[t]
        xs_grad[t] = xs_grad[t] + x_grad[p]
        vs_grad[t] = vs_grad[t] + v_grad[p]
        Cs_grad[t] = Cs_grad[t] + C_grad[p]
        Fs_grad[t] = Fs_grad[t] + F_grad[p]

    @wp.kernel
    def gather_mat_adjoint(order: wp.array(dtype=wp.int32), out_grad: wp.array(dtype=mat),
                           # outputs (accumulated)
                           a_grad: wp.array(dtype=mat)):
        t = wp.tid()
        p = order[t]
        a_grad[p] = a_grad[p] + out_grad[t]

    return SimpleNamespace(gather_adjoint=gather_adjoint, scatter_adjoint=scatter_adjoint,
                           gather_mat_adjoint=gather_mat_adjoint)
