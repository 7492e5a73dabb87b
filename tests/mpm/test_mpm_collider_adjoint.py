"""Verify the hand-written adjoint of the grid update with colliders (float64, small 3D scenes).

A viscous blob is pressed by kinematic colliders of every analytic shape, turning and
sliding, with friction, a sticky one and the floor. The adjoint is checked against central
finite differences (every shape, the cylinder included) and, for the shapes where Warp's
automatic adjoint is finite, against that adjoint to round-off.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from physim.mpm import (
    Body,
    Box,
    BoxCollider,
    CapsuleCollider,
    CylinderCollider,
    NewtonianFluid,
    PlaneCollider,
    SceneConfig,
    Simulator,
    SphereCollider,
)
from physim.testing import assert_grad_matches_fd

f64 = torch.float64


def _quat(axis, angle):
    a = torch.tensor(axis, dtype=f64)
    a = a / a.norm()
    s = math.sin(angle / 2)
    return tuple(float(c) for c in (*(s * a), math.cos(angle / 2)))


def scene(shapes, *, sticky=False, substeps=3, grid=12):
    """A blob of fluid at (0.5, 0.42, 0.5) moving up into kinematic colliders that overlap it."""
    cfg = SceneConfig(dim=3, grid=grid, dt=4e-4, substeps=substeps, dtype="float64")
    body = Body(name="b", shape=Box(center=(0.5, 0.42, 0.5), size=(0.34, 0.3, 0.34)),
                material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.3, density=1e3), velocity=(0.4, 0.9, -0.3))
    cols = [PlaneCollider(name="floor", position=(0.0, 0.3, 0.0), friction=0.4)]
    make = {
        "box": lambda: BoxCollider(name="box", position=(0.42, 0.58, 0.45), half_size=(0.09, 0.05, 0.11),
                                   rotation=_quat((1, 2, 0.5), 0.6), friction=0.3, kinematic=True),
        "sphere": lambda: SphereCollider(name="sphere", position=(0.62, 0.52, 0.55), radius=0.09, friction=0.5,
                                         kinematic=True),
        "capsule": lambda: CapsuleCollider(name="capsule", position=(0.5, 0.5, 0.36), radius=0.05, half_height=0.1,
                                           rotation=_quat((0.3, 0.1, 1), 1.1), friction=0.2, kinematic=True),
        "cylinder": lambda: CylinderCollider(name="cylinder", position=(0.45, 0.52, 0.6), radius=0.08,
                                             half_height=0.06, rotation=_quat((1, 0, 0.4), 0.9), friction=0.6,
                                             kinematic=True),
    }
    cols += [make[s]() for s in shapes]
    if sticky:
        cols.append(SphereCollider(name="glue", position=(0.36, 0.4, 0.5), radius=0.07, sticky=True))
    return Simulator(cfg, [body], cols)


def _actions(sim, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    k = sim.action_shape[0]
    a = torch.zeros(steps, k, 6, dtype=f64)
    a[:, :, 1] = -0.6  # pressing down into the rising blob
    return a + torch.randn(a.shape, generator=gen, dtype=f64) * torch.tensor([0.3] * 3 + [2.0] * 3, dtype=f64)


def _forces(sim, actions):
    """Largest contact force [N] on each collider over the rollout."""
    with torch.no_grad():
        out = sim.rollout(sim.reset(), actions, observe=lambda t, s: s.collider_force.norm(dim=-1))
    return out.observations.max(0).values


def _observe(t, s):
    return torch.cat([s.collider_force.flatten(), s.collider_torque.flatten()])


@pytest.mark.parametrize("shapes, sticky", [
    (("box", "sphere", "capsule"), True),
    (("cylinder",), False),
])
def test_collider_adjoint_matches_finite_differences(shapes, sticky):
    """Verify d(x_T, v_T, C_T, contact forces and torques)/d(x_0, v_0, actions, frictions) against central
    differences (the blob also reaches the domain walls)."""
    sim = scene(shapes, sticky=sticky)
    s0 = sim.reset()
    actions = _actions(sim, 2, seed=3)
    assert bool((_forces(sim, actions)[1:] > 0).all()), "every collider (but the floor) must touch the blob"
    names = [f"{c.name}.friction" for c in sim.colliders]
    mus = [sim.params[n].detach().clone() for n in names]

    def f(x, v, a, *m):
        for n, mu in zip(names, m):
            sim.params[n] = mu
        out = sim.rollout(dataclasses.replace(s0, x=x, v=v), a, observe=_observe)
        return out.state.x, out.state.v, out.state.C, out.observations

    assert_grad_matches_fd(f, [s0.x, s0.v, actions, *mus], eps=1e-6, rtol=1e-5, n_directions=2)


def test_collider_adjoint_equals_warps_automatic_adjoint():
    """Verify that the hand-written adjoint gives Warp's automatic adjoint's gradients to round-off
    (box, sphere, capsule, plane and a sticky collider; initial state, actions and a friction).

    On a 24³ grid: on the 12³ grid of the test above, Warp's automatic adjoint misses finite
    differences with respect to x_0 by 0.6-150 % (per shape), where the hand-written one agrees."""
    sim = scene(("box", "sphere", "capsule"), sticky=True, grid=24)
    be = sim._ensure_backend()
    assert be.grid_update_collider_adjoint is not None
    s0 = sim.reset()
    actions = _actions(sim, 2, seed=5)
    gen = torch.Generator().manual_seed(7)
    weights, grads = None, []
    for hand in (True, False):
        be.hand_grid_adjoint = hand
        x = s0.x.clone().requires_grad_(True)
        v = s0.v.clone().requires_grad_(True)
        a = actions.clone().requires_grad_(True)
        mu = torch.tensor(0.5, dtype=f64, requires_grad=True)
        sim.params["sphere.friction"] = mu
        out = sim.rollout(dataclasses.replace(s0, x=x, v=v), a, observe=_observe)
        outs = (out.state.x, out.state.v, out.state.C, out.observations)
        if weights is None:
            weights = [torch.randn(o.shape, generator=gen, dtype=f64) for o in outs]
        loss = sum((w * o).sum() for w, o in zip(weights, outs))
        grads.append(torch.autograd.grad(loss, [x, v, a, mu]))
    for name, g_hand, g_auto in zip(("x0", "v0", "actions", "friction"), *grads):
        assert bool(torch.isfinite(g_auto).all()), name
        assert float(g_hand.abs().max()) > 0, name
        torch.testing.assert_close(g_hand, g_auto, rtol=1e-9, atol=1e-12 * float(g_auto.abs().max()), msg=name)
