"""Verify the hand-written adjoints of the taped rigid motion and of the permutation gathers/scatters.

The gathers into cell order and the scatter back (`sort_kernels.make_sort_adjoint_kernels`) are
checked through a sorted scene whose whole initial state (x, v, C, F) requires a gradient, against
central finite differences (the `gather_mat` path, an external stress per particle, is that of the
neural materials: `tests/mpm/test_mpm_grad.py::test_neural_material_weights_get_fd_gradients`).

The taped substeps run `rigid_sums1`, `rigid_sums2` and `rigid_apply` as packed launches whose
adjoint is hand-written (`rigid_frame`, `rigid_apply_adjoint`, `rigid_sums2_adjoint`,
`rigid_sums1_adjoint`). In float64, on small simulator scenes with two rigid bodies in a fluid
(2D) and a spinning rigid cube (3D), the gradients with respect to the initial velocities and the
densities (the table's column the sums' masses come from) must equal those of Warp's automatic
adjoints of the same kernels (``hand_rigid = False``) to 1e-9, and match central finite differences.
"""

import dataclasses

import pytest
import torch

from physim.mpm import Body, Box, Elastic, NewtonianFluid, Rigid, SceneConfig, Simulator
from physim.testing import assert_grad_matches_fd

f64 = torch.float64


def _scene_2d():
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=3, dtype="float64")
    bodies = [Body(name="w", shape=Box(center=(0.5, 0.3), size=(0.5, 0.16)),
                   material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.3, density=1e3), velocity=(0.4, -0.5)),
              Body(name="r", shape=Box(center=(0.35, 0.5), size=(0.12, 0.1)), material=Rigid(density=500.0)),
              Body(name="q", shape=Box(center=(0.7, 0.55), size=(0.1, 0.14)), material=Rigid(density=800.0))]
    return Simulator(cfg, bodies)


def _scene_3d():
    cfg = SceneConfig(dim=3, grid=12, dt=4e-4, substeps=2, dtype="float64")
    bodies = [Body(name="r", shape=Box(center=(0.5, 0.5, 0.5), size=(0.2, 0.16, 0.18)), material=Rigid(density=600.0)),
              Body(name="w", shape=Box(center=(0.5, 0.3, 0.5), size=(0.4, 0.12, 0.4)),
                   material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.2, density=1e3))]
    return Simulator(cfg, bodies)


def _spin(sim, v0, body: int, w, vc):
    """Initial velocities with body `body` spinning at w [rad/s] about its centre and moving at vc [m/s]."""
    x = sim.reset().x
    sel = sim.material_id == body
    r = x[sel] - x[sel].mean(0)
    w = torch.tensor(w, dtype=f64)
    if x.shape[1] == 3:
        v0[sel] = torch.cross(w.expand(int(sel.sum()), 3), r, dim=1)
    else:
        v0[sel] = w[2] * torch.stack([-r[:, 1], r[:, 0]], 1)
    v0[sel] += torch.tensor(vc, dtype=f64)
    return v0


def _loss_fn(sim, names, steps):
    def f(v, *scales):
        for name, k in zip(names, scales, strict=True):
            sim.params[name] = sim.params[name].detach() * 0 + k * _BASE[name]
        st = sim.rollout(sim.reset(v=v), steps=steps, checkpoint_every=1).state
        return st.x, st.v

    return f


_BASE = {"r.density": 500.0, "q.density": 800.0, "w.density": 1e3}


def _grads(sim, f, inputs, hand: bool):
    sim._ensure_backend().hand_rigid = hand
    xs = [a.detach().clone().requires_grad_(True) for a in inputs]
    x, v = f(*xs)
    gen = torch.Generator().manual_seed(3)
    loss = (x * torch.randn(x.shape, generator=gen, dtype=f64)).sum() + (v * torch.randn(v.shape, generator=gen,
                                                                                          dtype=f64)).sum()
    return torch.autograd.grad(loss, xs), x.detach(), v.detach()


@pytest.mark.parametrize("dim", [2, 3])
def test_hand_written_rigid_adjoint_equals_warps(dim):
    """Verify that the hand-written rigid adjoint gives Warp's automatic adjoint's gradients to 1e-9."""
    if dim == 2:
        sim = _scene_2d()
        v0 = _spin(sim, _spin(sim, sim.reset().v.clone(), 1, [0.0, 0.0, 3.0], [0.3, -0.2]), 2, [0.0, 0.0, -2.0],
                   [-0.4, 0.1])
        names = ["r.density", "q.density", "w.density"]
    else:
        sim = _scene_3d()
        v0 = _spin(sim, sim.reset().v.clone(), 0, [1.0, 2.0, -1.5], [0.2, -0.5, 0.1])
        _BASE["r.density"] = 600.0
        names = ["r.density", "w.density"]
    f = _loss_fn(sim, names, 3)
    inputs = [v0, *(torch.tensor(1.0, dtype=f64) for _ in names)]
    g_auto, x_auto, v_auto = _grads(sim, f, inputs, hand=False)
    g_hand, x_hand, v_hand = _grads(sim, f, inputs, hand=True)
    _BASE["r.density"] = 500.0
    assert torch.equal(x_auto, x_hand) and torch.equal(v_auto, v_hand)  # same forward kernels
    for a, b in zip(g_auto, g_hand, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9 * float(a.abs().max()))


def test_hand_written_rigid_adjoint_two_bodies_fd():
    """Verify d(x_T, v_T) / d(v0, rigid densities) of two spinning rigid bodies in a fluid against FD."""
    sim = _scene_2d()
    assert sim._ensure_backend().hand_rigid  # the default
    v0 = _spin(sim, _spin(sim, sim.reset().v.clone(), 1, [0.0, 0.0, 3.0], [0.3, -0.2]), 2, [0.0, 0.0, -2.0],
               [-0.4, 0.1])
    f = _loss_fn(sim, ["r.density", "q.density"], 2)
    one = torch.tensor(1.0, dtype=f64)
    assert_grad_matches_fd(f, [v0, one, one.clone()], eps=1e-6, rtol=1e-5)


def test_sort_gather_scatter_adjoints_fd():
    """Verify d(x_T, v_T, C_T, F_T) / d(x0, v0, C0, F0) of a sorted two-body scene against finite differences."""
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=2, dtype="float64")
    assert cfg.sort_particles
    bodies = [Body(name="e", shape=Box(center=(0.4, 0.45), size=(0.16, 0.2)), material=Elastic(E=3e4, nu=0.3),
                   velocity=(0.8, -0.4)),
              Body(name="w", shape=Box(center=(0.62, 0.4), size=(0.16, 0.16)),
                   material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.3, density=1e3), velocity=(-0.6, 0.2))]
    sim = Simulator(cfg, bodies)
    s0 = sim.reset()
    n = s0.x.shape[0]
    gen = torch.Generator().manual_seed(5)
    C0 = 2.0 * torch.randn(n, 2, 2, generator=gen, dtype=f64)
    F0 = torch.eye(2, dtype=f64) + 0.05 * torch.randn(n, 2, 2, generator=gen, dtype=f64)

    def f(x, v, C, F):
        st = dataclasses.replace(sim.reset(x=x, v=v), C=C, F=F)
        out = sim.rollout(st, steps=2, checkpoint_every=1).state
        return out.x, out.v, out.C, out.F

    assert_grad_matches_fd(f, [s0.x, s0.v, C0, F0], eps=1e-6, rtol=1e-5)
