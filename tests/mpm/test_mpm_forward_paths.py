"""Verify that the untaped forward kernels (specialised to the scene) agree with the taped ones.

Without a tape a fluid-only scene carries J = det F instead of F, and the CPU grid update runs
one thread per block; a taped step (a state that requires grad) runs the general kernels with
F. Both must give the same trajectory up to round-off, also from a non-isotropic initial F.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from physim.mpm import Body, Box, NewtonianFluid, NonNewtonianFluid, PlaneCollider, SceneConfig, Simulator


def _scene(materials, colliders=()):
    cfg = SceneConfig(dim=2, grid=16, dt=2e-4, substeps=5, dtype="float64")
    bodies = [Body(name=f"b{i}", shape=Box(center=(0.35 + 0.3 * i, 0.4), size=(0.2, 0.2)), material=m,
                   velocity=(0.5 - i, -1.0)) for i, m in enumerate(materials)]
    return Simulator(cfg, bodies, colliders)


@pytest.mark.parametrize("colliders", [(), (PlaneCollider(name="floor", position=(0.0, 0.25, 0.0), friction=0.3),)])
def test_fluid_j_path_matches_the_taped_f_path(colliders):
    """Verify untaped fluid steps (J carried, block-threaded grid) match taped steps (F) within 1e-10."""
    sim = _scene([NewtonianFluid(bulk_modulus=2e3, density=1e3, viscosity=0.5),
                  NonNewtonianFluid(bulk_modulus=2e3, density=1e3, yield_stress=2.0, consistency=0.5,
                                    flow_index=0.6)], colliders)
    s0 = sim.reset()
    # a sheared, compressed initial F: J = det F must be what the J path starts from
    F0 = torch.tensor([[0.97, 0.05], [-0.02, 1.01]], dtype=torch.float64).expand_as(s0.F).clone()
    s0 = dataclasses.replace(s0, F=F0)
    with torch.no_grad():
        fast = s0
        for _ in range(4):
            fast = sim.step(fast)
    slow = dataclasses.replace(s0, v=s0.v.clone().requires_grad_(True))
    for _ in range(4):
        slow = sim.step(slow)
    J = torch.linalg.det(slow.F.detach())
    assert float((J - 1.0).abs().max()) > 1e-3  # the fluid was compressed: J is exercised
    for name in ("x", "v", "C", "F"):
        a, b = getattr(fast, name), getattr(slow, name).detach()
        assert torch.allclose(a, b, rtol=0.0, atol=1e-10 * max(1.0, float(b.abs().max()))), name
    # F leaves the operation as J^{1/d} I
    eye = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(fast.F, J.sqrt()[:, None, None] * eye, atol=1e-12)
