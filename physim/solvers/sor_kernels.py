"""Warp kernel of successive over-relaxation (SOR) on a CSR matrix, one relaxation factor per thread.

SOR is sequential by nature (each unknown uses the already updated ones), so one thread runs a
whole solve: sweeps until the residual meets the tolerance. Launching W threads solves the same
system for W values of ω at once, which is what learning ω across a sequence needs.
"""

from __future__ import annotations

import warp as wp


@wp.func
def residual_norm(
    indptr: wp.array(dtype=wp.int32),
    indices: wp.array(dtype=wp.int32),
    data: wp.array(dtype=wp.float64),
    b: wp.array(dtype=wp.float64),
    x: wp.array2d(dtype=wp.float64),
    t: int,
):
    # ‖b − A x_t‖ for row t of the batch of iterates
    rr = wp.float64(0.0)
    for i in range(b.shape[0]):
        s = b[i]
        for p in range(indptr[i], indptr[i + 1]):
            s = s - data[p] * x[t, indices[p]]
        rr = rr + s * s
    return wp.sqrt(rr)


@wp.kernel
def sor_solve(
    indptr: wp.array(dtype=wp.int32),
    indices: wp.array(dtype=wp.int32),
    data: wp.array(dtype=wp.float64),
    diag: wp.array(dtype=wp.float64),
    b: wp.array(dtype=wp.float64),
    omegas: wp.array(dtype=wp.float64),
    tol: wp.float64,
    maxiter: wp.int32,
    # outputs
    x: wp.array2d(dtype=wp.float64),
    history: wp.array2d(dtype=wp.float64),
    iterations: wp.array(dtype=wp.int32),
):
    # x_i ← (1 − ω) x_i + ω (b_i − Σ_{j≠i} a_ij x_j) / a_ii, rows in natural order; stop on ‖b − A x‖ ≤ tol.
    t = wp.tid()
    om = omegas[t]
    n = b.shape[0]
    res = residual_norm(indptr, indices, data, b, x, t)
    history[t, 0] = res
    it = wp.int32(0)
    while it < maxiter and res > tol:
        for i in range(n):
            s = b[i]
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j != i:
                    s = s - data[p] * x[t, j]
            x[t, i] = (wp.float64(1.0) - om) * x[t, i] + om * s / diag[i]
        res = residual_norm(indptr, indices, data, b, x, t)
        it = it + 1
        history[t, it] = res
    iterations[t] = it
