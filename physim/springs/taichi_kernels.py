"""Taichi kernels of the mass-spring chain (float64).

Each substep s reads x[s], v[s] and writes x[s+1], v[s+1], so no field element is
overwritten after it is read: Taichi's reverse-mode autodiff is then exact.
"""

import taichi as ti

vec2 = ti.types.vector(2, ti.f64)


@ti.data_oriented
class ChainFields:
    """Fields of one chain simulator: one control step of `substeps` substeps."""

    def __init__(self, particle_count: int, substeps: int, free_mask):
        n, s = particle_count, substeps
        self.n, self.s = n, s
        self.x_in = ti.Vector.field(2, ti.f64, shape=n, needs_grad=True)
        self.v_in = ti.Vector.field(2, ti.f64, shape=n, needs_grad=True)
        self.f_ext = ti.Vector.field(2, ti.f64, shape=n, needs_grad=True)
        self.stiffness = ti.field(ti.f64, shape=1, needs_grad=True)
        self.damping = ti.field(ti.f64, shape=1, needs_grad=True)
        self.x = ti.Vector.field(2, ti.f64, shape=(s + 1, n), needs_grad=True)
        self.v = ti.Vector.field(2, ti.f64, shape=(s + 1, n), needs_grad=True)
        self.f = ti.Vector.field(2, ti.f64, shape=(s, n), needs_grad=True)
        self.x_out = ti.Vector.field(2, ti.f64, shape=n, needs_grad=True)
        self.v_out = ti.Vector.field(2, ti.f64, shape=n, needs_grad=True)
        self.free = ti.field(ti.f64, shape=n)
        self.free.from_numpy(free_mask)

    @ti.kernel
    def load(self):
        for i in range(self.n):
            self.x[0, i] = self.x_in[i]
            self.v[0, i] = self.v_in[i]

    @ti.kernel
    def external_forces(self, s: ti.i32, mass: ti.f64, gravity: ti.f64, drag: ti.f64):
        """f = f_ext + m g − drag v."""
        for i in range(self.n):
            self.f[s, i] = self.f_ext[i] + vec2(0.0, -mass * gravity) - drag * self.v[s, i]

    @ti.kernel
    def spring_forces(self, s: ti.i32, rest_length: ti.f64):
        """Damped Hooke spring i between particles i and i+1."""
        for i in range(self.n - 1):
            d = self.x[s, i + 1] - self.x[s, i]
            l = d.norm()
            n = d / l
            rate = (self.v[s, i + 1] - self.v[s, i]).dot(n)
            fs = (self.stiffness[0] * (l - rest_length) + self.damping[0] * rate) * n
            self.f[s, i] += fs
            self.f[s, i + 1] -= fs

    @ti.kernel
    def integrate(self, s: ti.i32, inv_mass: ti.f64, dt: ti.f64):
        """Semi-implicit Euler; pinned particles have free = 0."""
        for i in range(self.n):
            vn = self.free[i] * (self.v[s, i] + dt * inv_mass * self.f[s, i])
            self.v[s + 1, i] = vn
            self.x[s + 1, i] = self.x[s, i] + dt * vn

    @ti.kernel
    def store(self):
        for i in range(self.n):
            self.x_out[i] = self.x[self.s, i]
            self.v_out[i] = self.v[self.s, i]
