"""Warp kernels of the mass-spring chain (float64)."""

import warp as wp


@wp.kernel
def external_forces(
    v: wp.array(dtype=wp.vec2d),
    f_ext: wp.array(dtype=wp.vec2d),
    mass: wp.float64,
    gravity: wp.float64,
    drag: wp.float64,
    # outputs
    f: wp.array(dtype=wp.vec2d),
):
    """f = f_ext + m g − drag v, per particle."""
    i = wp.tid()
    f[i] = f_ext[i] + wp.vec2d(wp.float64(0.0), -mass * gravity) - drag * v[i]


@wp.kernel
def spring_forces(
    x: wp.array(dtype=wp.vec2d),
    v: wp.array(dtype=wp.vec2d),
    stiffness: wp.array(dtype=wp.float64),
    damping: wp.array(dtype=wp.float64),
    rest_length: wp.float64,
    # outputs
    f: wp.array(dtype=wp.vec2d),
):
    """Damped Hooke spring i between particles i and i+1: (k (l − L) + c ḋ·n) n."""
    i = wp.tid()
    d = x[i + 1] - x[i]
    l = wp.length(d)
    n = d / l
    rate = wp.dot(v[i + 1] - v[i], n)
    fs = (stiffness[0] * (l - rest_length) + damping[0] * rate) * n
    wp.atomic_add(f, i, fs)
    wp.atomic_sub(f, i + 1, fs)


@wp.kernel
def integrate(
    x: wp.array(dtype=wp.vec2d),
    v: wp.array(dtype=wp.vec2d),
    f: wp.array(dtype=wp.vec2d),
    free: wp.array(dtype=wp.float64),
    inv_mass: wp.float64,
    dt: wp.float64,
    # outputs
    x_out: wp.array(dtype=wp.vec2d),
    v_out: wp.array(dtype=wp.vec2d),
):
    """Semi-implicit Euler: v' = v + dt f/m, x' = x + dt v'; pinned particles have free = 0."""
    i = wp.tid()
    vn = free[i] * (v[i] + dt * inv_mass * f[i])
    v_out[i] = vn
    x_out[i] = x[i] + dt * vn
