"""Verify the taped J path of scenes of Newtonian fluids (`p2g_fluid_adjoint`, `g2p_fluid_adjoint`).

The taped substeps of such a scene run the untaped kernels `p2g_fluid` (stress from J = det F
and C, fused) and `g2p_fluid` (J ← det(I + Δt C) J) and record hand-written adjoints. Checked
here: each adjoint kernel against central finite differences in float64 (2D and 3D, random
particles and grid, a viscous, bulk-viscous Tait fluid); the taped forward against the untaped
one (bitwise in float32, one CPU worker); and, on small scenes, the gradient of a loss with
respect to the initial velocity, the fluid's parameters and a kinematic collider's actions
against finite differences and against the taped F path (`taped_j` off) it replaces.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from physim.mpm import Body, Box, BoxCollider, NewtonianFluid, PlaneCollider, SceneConfig, Simulator
from physim.mpm.kernel_types import kernel_types
from physim.mpm.materials import base as mb
from physim.runtime import init_warp
from physim.testing import assert_grad_matches_fd

f64 = torch.float64
P0 = mb.COL_P0
RES = {2: (10, 10, 1), 3: (8, 8, 8)}
DT = 4e-4


@functools.cache
def _kernels(dim):
    from physim.mpm.transfer_kernels import make_transfer_kernels

    init_warp()
    T = kernel_types(dim, f64)
    return T, make_transfer_kernels(T, frozenset(range(mb.KIND_NEURAL + 1)), False, False)


def _table(scale):
    """One Newtonian body: ρ, then K, η, γ, ζ from column P0 (γ ≠ 1: the Tait branch of the pressure); `scale`
    multiplies ρ, K, η, ζ (γ is a constant of the law: its column has no gradient)."""
    z = torch.zeros((), dtype=f64)
    rho, K, eta, zeta = scale * torch.tensor([1e3, 2e3, 0.5, 0.3], dtype=f64)
    return torch.stack([rho, z, z, K, eta, z + 7.0, zeta, z, z, z]).unsqueeze(0)


def _particles(dim, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    dx = 1.0 / RES[dim][0]
    x = (0.35 + 0.3 * torch.rand(n, dim, generator=g, dtype=f64))  # inside the grid, away from its edge
    v = torch.randn(n, dim, generator=g, dtype=f64)
    C = 20.0 * torch.randn(n, dim, dim, generator=g, dtype=f64)
    J = 0.9 + 0.2 * torch.rand(n, generator=g, dtype=f64)
    vol = torch.full((n,), dx**dim / 4, dtype=f64)
    return x, v, C, J, vol


class _P2G(torch.autograd.Function):
    """grid(x, v, C, J, table) through `p2g_fluid`, backward through `p2g_fluid_adjoint`."""

    @staticmethod
    def forward(ctx, x, v, C, J, table, vol):
        wp = init_warp()
        dim, n = x.shape[1], x.shape[0]
        T, K = _kernels(dim)
        a = [wp.from_torch(t.detach().contiguous(), dtype=d) for t, d in
             ((x, T.vec), (v, T.vec), (C, T.mat), (J, T.float), (vol, T.float))]
        body = wp.zeros(n, dtype=wp.int32)
        kinds = wp.array([mb.KIND_NEWTONIAN], dtype=wp.int32)
        tw = wp.from_torch(table.detach().contiguous(), dtype=T.float)
        nodes = RES[dim][0] * RES[dim][1] * RES[dim][2]
        grid = wp.zeros(nodes, dtype=T.vecg)
        res, inv_dx = wp.vec3i(*RES[dim]), T.float(RES[dim][0])
        wp.launch(K.p2g_fluid, n, inputs=[*a[:4], body, a[4], kinds, tw, res, inv_dx, T.float(DT), 0], outputs=[grid])
        ctx.saved = (K, T, a, body, tw, res, inv_dx, n)
        return wp.to_torch(grid).clone()

    @staticmethod
    def backward(ctx, g):
        wp = init_warp()
        K, T, a, body, tw, res, inv_dx, n = ctx.saved
        gx, gv, gC, gJ = (wp.zeros(n, dtype=T.vec), wp.zeros(n, dtype=T.vec), wp.zeros(n, dtype=T.mat),
                          wp.zeros(n, dtype=T.float))
        gt = wp.zeros(tw.shape, dtype=T.float)
        gg = wp.from_torch(g.contiguous(), dtype=T.vecg)
        wp.launch(K.p2g_fluid_adjoint, n, inputs=[*a[:4], body, a[4], tw, res, inv_dx, T.float(DT), gg, 1],
                  outputs=[gx, gv, gC, gJ, gt])
        return (*(wp.to_torch(t).clone() for t in (gx, gv, gC, gJ, gt)), None)


class _G2P(torch.autograd.Function):
    """(x', v', C', J')(x, J, grid_v) through `g2p_fluid`, backward through `g2p_fluid_adjoint`."""

    @staticmethod
    def forward(ctx, x, J, grid_v):
        wp = init_warp()
        dim, n = x.shape[1], x.shape[0]
        T, K = _kernels(dim)
        xw = wp.from_torch(x.detach().contiguous(), dtype=T.vec)
        Jw = wp.from_torch(J.detach().contiguous(), dtype=T.float)
        gvw = wp.from_torch(grid_v.detach().contiguous(), dtype=T.vec)
        outs = [wp.zeros(n, dtype=d) for d in (T.vec, T.vec, T.mat, T.float)]
        res, inv_dx = wp.vec3i(*RES[dim]), T.float(RES[dim][0])
        nb = wp.vec3i(*[-(-r // 4) for r in RES[dim]])
        flags, marks = wp.zeros(2, dtype=wp.int32), wp.zeros(64, dtype=wp.int32)
        wp.launch(K.g2p_fluid, n, inputs=[xw, Jw, gvw, res, inv_dx, T.float(DT), nb, 0], outputs=[*outs, flags, marks])
        ctx.saved = (K, T, xw, Jw, gvw, outs, res, inv_dx, n)
        return tuple(wp.to_torch(o).clone() for o in outs)

    @staticmethod
    def backward(ctx, gx, gv, gC, gJ):
        wp = init_warp()
        K, T, xw, Jw, gvw, outs, res, inv_dx, n = ctx.saved
        g_in = [wp.from_torch(t.contiguous(), dtype=d)
                for t, d in ((gx, T.vec), (gv, T.vec), (gC, T.mat), (gJ, T.float))]
        ax, aJ, agv = wp.zeros(n, dtype=T.vec), wp.zeros(n, dtype=T.float), wp.zeros(gvw.shape[0], dtype=T.vec)
        wp.launch(K.g2p_fluid_adjoint, n, inputs=[xw, Jw, gvw, res, inv_dx, T.float(DT), outs[1], outs[2], *g_in],
                  outputs=[ax, aJ, agv])
        return wp.to_torch(ax).clone(), wp.to_torch(aJ).clone(), wp.to_torch(agv).clone()


@pytest.mark.parametrize("dim", [2, 3])
def test_p2g_fluid_adjoint_matches_fd(dim):
    """Verify ∂grid/∂(x, v, C, J, ρ, K, η, ζ) of `p2g_fluid` (Newtonian, Tait γ = 7) against finite differences."""
    x, v, C, J, vol = _particles(dim)
    assert_grad_matches_fd(lambda x, v, C, J, s: _P2G.apply(x, v, C, J, _table(s), vol),
                           [x, v, C, J, torch.ones(4, dtype=f64)], eps=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
def test_g2p_fluid_adjoint_matches_fd(dim):
    """Verify ∂(x', v', C', J')/∂(x, J, grid velocity) of `g2p_fluid` against finite differences."""
    x, _, _, J, _ = _particles(dim, seed=1)
    nodes = RES[dim][0] * RES[dim][1] * RES[dim][2]
    grid_v = torch.randn(nodes, dim, generator=torch.Generator().manual_seed(2), dtype=f64)
    assert_grad_matches_fd(_G2P.apply, [x, J, grid_v], eps=1e-6, rtol=1e-6)


def test_g2p_fluid_adjoint_is_zero_where_j_is_clamped():
    """Verify the J gradient vanishes where J' = max(det(I + Δt C) J, 10⁻⁶) is clamped (as the forward is flat)."""
    x, _, _, J, _ = _particles(2, seed=3)
    J = torch.full_like(J, 1e-7)
    grid_v = torch.randn(100, 2, generator=torch.Generator().manual_seed(4), dtype=f64)
    J.requires_grad_(True)
    out = _G2P.apply(x, J, grid_v)
    assert torch.equal(out[3].detach(), torch.full_like(J, 1e-6))
    (gJ,) = torch.autograd.grad(out[3].sum(), J)
    assert torch.equal(gJ, torch.zeros_like(J))


def _fluid_scene(dim=2, *, dtype="float64", colliders=(), threads=None):
    cfg = SceneConfig(dim=dim, grid=16 if dim == 2 else 12, dt=DT, substeps=4, dtype=dtype, cpu_threads=threads)
    body = Body(name="w", shape=Box(center=(0.5, 0.42, 0.5)[:dim], size=(0.24,) * dim),
                material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.5, bulk_viscosity=0.2, gamma=7.0, density=1e3),
                velocity=(0.3, -1.0, 0.2)[:dim])
    floor = PlaneCollider(name="floor", position=(0.0, 0.3, 0.0), friction=0.4)
    return Simulator(cfg, [body], [floor, *colliders])


def test_taped_forward_is_bitwise_the_untaped_j_path():
    """Verify a taped step of a Newtonian scene gives bitwise the untaped step's state (float32, one CPU worker)."""
    sim = _fluid_scene(dtype="float32", threads=1)
    be = sim._ensure_backend()
    assert be.carry_j and be.taped_j and be.particle_workers == 1
    s0 = sim.reset()
    with torch.no_grad():
        fast = s0
        for _ in range(3):
            fast = sim.step(fast)
    slow = dataclasses.replace(s0, v=s0.v.clone().requires_grad_(True))
    for _ in range(3):
        slow = sim.step(slow)
    assert slow.x.requires_grad
    for name in ("x", "v", "C", "F"):
        assert torch.equal(getattr(fast, name), getattr(slow, name).detach()), name


def _loss(st):
    w = torch.sin(torch.arange(st.x.numel(), dtype=st.x.dtype)).view_as(st.x)
    return (st.x * w).sum() + (st.v * w).sum() + st.F.diagonal(dim1=-2, dim2=-1).sum()


def test_fluid_scene_gradient_matches_fd_and_the_f_path():
    """Verify d loss / d(v0, K, η, ρ) of a viscous Tait fluid falling on a floor, taped J path, against finite
    differences, and that the taped F path (`taped_j` off) gives the same gradient within 1e-10."""
    sim = _fluid_scene()
    be = sim._ensure_backend()
    s0 = sim.reset()
    v0 = s0.v.clone()
    v0[:, 0] += 2.0 * (s0.x[:, 1] - 0.42)

    def f(v, K, eta, rho):
        sim.params["w.bulk_modulus"] = 2e3 * K
        sim.params["w.viscosity"] = 0.5 * eta
        sim.params["w.density"] = 1e3 * rho
        return _loss(sim.rollout(sim.reset(v=v), steps=4, checkpoint_every=2).state)

    ones = [torch.tensor(1.0, dtype=f64) for _ in range(3)]
    assert be.taped_j
    assert_grad_matches_fd(f, [v0, *ones], eps=1e-6, rtol=1e-5)
    grads = {}
    for taped_j in (True, False):
        be.taped_j = taped_j
        args = [a.clone().requires_grad_(True) for a in (v0, *ones)]
        grads[taped_j] = torch.autograd.grad(f(*args), args)
    be.taped_j = True
    for a, b in zip(grads[True], grads[False], strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12 * float(b.abs().max()))


def test_fluid_scene_collider_actions_gradient_3d():
    """Verify d loss / d(actions) of a kinematic box stirring a 3D fluid (taped J path) against finite differences."""
    paddle = BoxCollider(name="paddle", position=(0.45, 0.5, 0.5), half_size=(0.04, 0.1, 0.08), kinematic=True,
                         friction=0.3)
    sim = _fluid_scene(dim=3, colliders=[paddle])
    assert sim._ensure_backend().taped_j
    actions = torch.zeros(3, 1, 6, dtype=f64)
    actions[:, 0, 0] = 1.0
    actions[:, 0, 1] = -0.5
    actions += 0.2 * torch.randn(actions.shape, generator=torch.Generator().manual_seed(5), dtype=f64)

    def f(a):
        return _loss(sim.rollout(sim.reset(), a, checkpoint_every=2).state)

    assert_grad_matches_fd(f, [actions], eps=1e-6, rtol=1e-5)
