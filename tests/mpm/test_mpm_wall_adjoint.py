"""Verify the gradient through the domain walls of a scene that has colliders.

With a collider in the scene the grid update's adjoint is Warp's own, and Warp (without
``wp.config.enable_vector_component_overwrites``) does not clear the adjoint of a vector
component that is overwritten in place. The walls used to zero the normal velocity with
``v[ax] = 0``, so the gradient leaked through the wall: a few per cent wrong per control step
for particles against a wall, compounding into NaN over the fluid tasks' full horizons in
float32 (Transporting, Stabilizing). The walls now apply a 0/1 mask. Scenes without colliders
use the hand-written adjoint (``test_collider_free_scene_with_walls`` in test_mpm_grad.py).
"""

from __future__ import annotations

import pytest
import torch

from physim.mpm import Body, Box, NewtonianFluid, PlaneCollider, SceneConfig, Simulator
from physim.testing import assert_grad_matches_fd

f64 = torch.float64


def _water_against_wall(boundary: str, dtype: str = "float64") -> Simulator:
    """A 2D block of water thrown at the left wall; a collider far above it that it never reaches."""
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=4, dtype=dtype, boundary=boundary)
    body = Body(name="water", shape=Box(center=(0.345, 0.345), size=(0.3, 0.3)),
                material=NewtonianFluid(bulk_modulus=1e4, viscosity=0.1, density=1e3), velocity=(-1.0, -0.5))
    # the plane's solid side is above y = 0.85: it changes nothing but puts the collider code
    # (and Warp's generated adjoint of the grid update) in the scene
    lid = PlaneCollider(name="lid", position=(0.0, 0.85), normal=(0.0, -1.0), friction=0.2)
    return Simulator(cfg, [body], [lid])


@pytest.mark.parametrize("boundary", ["sticky", "slip", "separate"])
def test_wall_gradient_with_a_collider_in_the_scene(boundary):
    """Verify d x_T / d(v0, K) of water pressed into the walls, with a collider present, against FD."""
    sim = _water_against_wall(boundary)
    v0 = sim.reset().v
    n_wall = 0

    def f(k, v):
        nonlocal n_wall
        sim.params["water.bulk_modulus"] = 1e4 * k
        out = sim.rollout(sim.reset(v=v), steps=6, checkpoint_every=3).state.x
        lo = sim.cfg.bound * sim.cfg.spacing
        n_wall = max(n_wall, int((out < lo + 0.5 * sim.cfg.spacing).any(1).sum()))  # stencil on a wall node
        return out

    assert_grad_matches_fd(f, [torch.tensor(1.0, dtype=f64), v0], eps=1e-6, rtol=1e-5)
    assert n_wall > 10, "the scene must press water into the wall nodes for this test to mean anything"


def _sloshing(dtype: str) -> Simulator:
    """2D water thrown into the left wall of a slip box and sloshing back, a collider-lid above it."""
    cfg = SceneConfig(dim=2, grid=32, dt=5e-4, substeps=4, dtype=dtype, boundary="slip", gravity=(0.0, -10.0))
    body = Body(name="water", shape=Box(center=(0.3, 0.35), size=(0.4, 0.4)),
                material=NewtonianFluid(bulk_modulus=1e5, viscosity=1e-3, bulk_viscosity=1.0, density=1e3),
                velocity=(-1.0, -0.5))
    lid = PlaneCollider(name="lid", position=(0.0, 0.85), normal=(0.0, -1.0), friction=0.2)
    return Simulator(cfg, [body], [lid])


def test_float32_long_horizon_gradient_matches_float64_fd():
    """Verify a float32 gradient over 200 control steps of water against the walls (float64 FD).

    The leak through the walls compounded: before the fix this gradient was 20× too large
    (about 12 against 0.62), over the fluid tasks' full horizons it overflowed float32.
    """
    steps = 200

    def loss(sim, v):
        out = sim.rollout(sim.reset(v=v), steps=steps, checkpoint_every=None, observe=lambda t, s: s.x[:, 0].mean())
        return out.observations.sum()

    sim32, sim64 = _sloshing("float32"), _sloshing("float64")
    v = sim32.reset().v.clone().requires_grad_(True)
    loss(sim32, v).backward()
    g = v.grad.double()
    assert bool(torch.isfinite(g).all())
    d = torch.randn(g.shape, generator=torch.Generator().manual_seed(0), dtype=f64)
    d /= d.norm()
    v64, eps = sim64.reset().v, 1e-6
    with torch.no_grad():
        fd = (loss(sim64, v64 + eps * d) - loss(sim64, v64 - eps * d)) / (2 * eps)
    ad = float((g * d).sum())
    assert abs(ad - float(fd)) <= 1e-2 * abs(float(fd)) + 1e-6, (ad, float(fd))
