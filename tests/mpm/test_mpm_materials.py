"""Verify the material library beyond gradients: rigid bodies, the neural slot, Herschel–Bulkley,
meshes, colliders, and the refusal of bad input before any kernel runs."""

from __future__ import annotations

import dataclasses
import math

import meshio
import numpy as np
import pytest
import torch

from physim.errors import ConfigError
from physim.mpm import (
    Body,
    Box,
    BoxCollider,
    CapsuleCollider,
    CylinderCollider,
    DruckerPrager,
    Elastic,
    Mesh,
    MeshCollider,
    NeuralMaterial,
    NewtonianFluid,
    NonNewtonianFluid,
    PlaneCollider,
    Rigid,
    SceneConfig,
    Simulator,
    Sphere,
    SphereCollider,
    VonMises,
)
from physim.mpm.materials import lame, polar


def test_rigid_body_keeps_its_shape_while_bouncing_off_jelly():
    """Verify shape matching: pairwise distances of a rigid body change < 1e-5 m while it lands on jelly."""
    cfg = SceneConfig(dim=2, grid=32, dt=2e-4, substeps=20)
    jelly = Body(name="jelly", shape=Box(center=(0.5, 0.2), size=(0.5, 0.1)), material=Elastic(E=2e4, nu=0.3))
    rock = Body(name="rock", shape=Box(center=(0.5, 0.4), size=(0.1, 0.06)), material=Rigid(density=2000.0),
                velocity=(0.0, -1.0))
    sim = Simulator(cfg, [jelly, rock])
    s = sim.reset()
    sel = sim.material_id == 1
    d0 = torch.cdist(s.x[sel], s.x[sel])
    with torch.no_grad():
        for _ in range(10):
            s = sim.step(s)
    d1 = torch.cdist(s.x[sel], s.x[sel])
    assert float((d1 - d0).abs().max()) < 1e-5
    assert float(s.x[sel, 1].mean()) < 0.38  # it moved
    assert float((s.x[~sel] - sim.reset().x[~sel]).abs().max()) > 1e-3  # and dented the jelly


class TorchCorotated(torch.nn.Module):
    """The fixed-corotated law written in torch: P = 2μ (F − R) + λ (J − 1) J F⁻ᵀ."""

    def __init__(self, E, nu):
        super().__init__()
        mu, lam = lame(E, nu)
        self.mu = torch.nn.Parameter(torch.tensor(mu, dtype=torch.float64))
        self.lam = torch.nn.Parameter(torch.tensor(lam, dtype=torch.float64))

    def forward(self, F):
        R = polar(F)
        J = torch.linalg.det(F)[:, None, None]
        return 2 * self.mu * (F - R) + self.lam * (J - 1) * J * torch.linalg.inv(F).transpose(1, 2)


def test_neural_slot_reproduces_the_warp_law():
    """Verify a torch module implementing fixed corotated gives the Warp law's trajectory (float64)."""
    cfg = SceneConfig(dim=3, grid=12, dt=4e-4, substeps=3, dtype="float64")
    shape = Box(center=(0.5, 0.5, 0.5), size=(0.25, 0.25, 0.25))
    v0 = (0.3, -1.0, 0.2)
    ref = Simulator(cfg, [Body(shape=shape, material=Elastic(E=2e4, nu=0.3), velocity=v0)])
    law = TorchCorotated(2e4, 0.3)
    net = Simulator(cfg, [Body(shape=shape, material=NeuralMaterial(stress=law, density=1000.0, wave_speed_bound=6.0),
                               velocity=v0)])
    a, b = ref.reset(), net.reset()
    for _ in range(4):
        a, b = ref.step(a), net.step(b)
    assert float((a.x - b.x).detach().abs().max()) < 1e-12
    assert float((a.F - b.F).detach().abs().max()) < 1e-10
    assert float((a.x - ref.reset().x).abs().max()) > 1e-3


class Incompressible(torch.nn.Module):
    """Plastic projection F ← F / det(F)^(1/3): keeps volume (a toy learned projection)."""

    def forward(self, F):
        return F / torch.linalg.det(F).abs()[:, None, None] ** (1 / 3)


def test_neural_plastic_projection_is_applied_every_substep():
    """Verify the plastic module's output replaces F (det F = 1 after each step) with a Warp elastic stress."""
    cfg = SceneConfig(dim=3, grid=12, dt=4e-4, substeps=3)
    mat = NeuralMaterial(elastic=Elastic(E=2e4, nu=0.3), plastic=Incompressible())
    sim = Simulator(cfg, [Body(shape=Sphere(center=(0.5, 0.5, 0.5), radius=0.12), material=mat,
                               velocity=(0.0, -1.0, 0.0))])
    assert set(sim.params) == {"body0.density", "body0.E", "body0.nu"}
    s = sim.reset()
    s = sim.step(dataclasses.replace(s, v=s.v + 0.5 * (s.x - 0.5)))
    assert float((torch.linalg.det(s.F) - 1).abs().max()) < 1e-5


def test_yield_stress_fluid_holds_a_heap_that_water_does_not():
    """Verify a Herschel–Bulkley blob with a yield stress stays at least twice as tall as a Newtonian one."""
    def height(material):
        cfg = SceneConfig(dim=2, grid=32, dt=2e-4, substeps=25)
        sim = Simulator(cfg, [Body(shape=Box(center=(0.5, 0.2), size=(0.15, 0.2)), material=material)],
                        [PlaneCollider(position=(0, 0.1, 0), friction=1.0)])
        s = sim.reset()
        with torch.no_grad():
            for _ in range(60):  # 0.3 s
                s = sim.step(s)
        return float(s.x[:, 1].max()) - 0.1

    paste = height(NonNewtonianFluid(bulk_modulus=2e4, yield_stress=5e3, consistency=5.0, flow_index=0.5,
                                     max_viscosity=1000.0))
    water = height(NewtonianFluid(bulk_modulus=2e4, viscosity=1e-3))
    assert paste > 2 * water, (paste, water)


def cube_mesh(path, half=0.1):
    pts = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    tris = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    meshio.write_points_cells(path, pts, [("triangle", tris)])
    return path


def drop_ball(collider):
    """A jelly ball dropped onto `collider` for 0.16 s: final state and the most negative y-force seen."""
    cfg = SceneConfig(dim=3, grid=24, dt=2e-4, substeps=20)
    ball = Body(shape=Sphere(center=(0.5, 0.55, 0.5), radius=0.06), material=Elastic(E=2e4),
                velocity=(0.0, -1.0, 0.0))
    sim = Simulator(cfg, [ball], [collider])
    s = sim.reset()
    push = 0.0
    with torch.no_grad():
        for _ in range(40):
            s = sim.step(s)
            push = min(push, float(s.collider_force[0, 1]))
    return s, push


def test_mesh_body_and_mesh_collider(tmp_path):
    """Verify a mesh cube samples the same particles as the equal Box, and a mesh collider acts like a box."""
    path = str(cube_mesh(tmp_path / "cube.obj"))
    cfg = SceneConfig(dim=3, grid=24, dt=2e-4, substeps=20)
    from_mesh = Simulator(cfg, [Body(shape=Mesh(path=path, center=(0.5, 0.5, 0.5), scale=1.0), material=Elastic())])
    from_box = Simulator(cfg, [Body(shape=Box(center=(0.5, 0.5, 0.5), size=(0.2, 0.2, 0.2)), material=Elastic())])
    assert from_mesh.particle_count == from_box.particle_count
    assert float((from_mesh.reset().x - from_box.reset().x).abs().max()) < 1e-6

    a, push = drop_ball(MeshCollider(path=path, position=(0.5, 0.25, 0.5)))
    b, _ = drop_ball(BoxCollider(position=(0.5, 0.25, 0.5), half_size=(0.1, 0.1, 0.1)))
    assert float(a.x[:, 1].min()) > 0.35 - 0.5 / 24  # resting on top of the cube (y = 0.35)
    assert abs(float(a.x[:, 1].mean()) - float(b.x[:, 1].mean())) < 0.01
    assert push < 0  # the ball pushed the collider down at some step


@pytest.mark.parametrize("collider", [
    SphereCollider(position=(0.5, 0.25, 0.5), radius=0.1),
    CylinderCollider(position=(0.5, 0.25, 0.5), radius=0.15, half_height=0.1),
    CapsuleCollider(position=(0.5, 0.2, 0.5), radius=0.08, half_height=0.1,
                    rotation=(0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))),
], ids=["sphere", "cylinder", "capsule-rotated"])
def test_primitive_colliders_stop_a_falling_ball(collider):
    """Verify sphere, cylinder and (rotated) capsule colliders hold a falling ball above their surface."""
    s, push = drop_ball(collider)
    top = {"sphere": 0.35, "cylinder": 0.35, "capsule": 0.28}[collider.type_name]
    assert float(s.x[:, 1].min()) > top - 0.6 / 24
    assert push < 0  # the ball pushed the collider down at some step


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Elastic(E=0.0), "E"),
        (lambda: Elastic(E=-1e5), "E"),
        (lambda: Elastic(nu=0.5), "nu"),
        (lambda: Elastic(nu=-1.0), "nu"),
        (lambda: VonMises(yield_stress=-1.0), "yield_stress"),
        (lambda: NewtonianFluid(viscosity=-0.1), "viscosity"),
        (lambda: NonNewtonianFluid(yield_stress=-5.0), "yield_stress"),
        (lambda: DruckerPrager(friction_angle=95.0), "friction_angle"),
        (lambda: Elastic(model="rubber"), "model"),
        (lambda: SceneConfig(boundary="bouncy"), "boundary"),
        (lambda: SceneConfig(dim=4), "dim"),
        (lambda: PlaneCollider(friction=-0.1), "friction"),
    ],
)
def test_bad_parameters_are_refused_on_construction(make, field):
    """Verify each bad value raises one ValueError naming the field, the value and the allowed range."""
    with pytest.raises(ValueError) as info:
        make()
    assert isinstance(info.value, ConfigError) and info.value.field == field
    assert "expected" in str(info.value)


def test_dt_above_cfl_and_particles_outside_are_refused_before_kernels():
    """Verify the CFL bound and the domain are checked at construction and reset, naming dt / the body."""
    cfg = SceneConfig(dim=2, grid=32, dt=1e-2, substeps=1)
    body = Body(name="jelly", shape=Box(center=(0.5, 0.5), size=(0.2, 0.2)), material=Elastic(E=1e5))
    with pytest.raises(ValueError, match=r"dt=0\.01 is invalid: expected dt ≤ .* CFL bound .* 'jelly'"):
        Simulator(cfg, [body])
    cfg = SceneConfig(dim=2, grid=32, dt=1e-4, substeps=1)
    outside = Body(name="far", shape=Box(center=(0.98, 0.5), size=(0.2, 0.2)), material=Elastic(E=1e5))
    with pytest.raises(ValueError, match=r"far\.shape"):
        Simulator(cfg, [outside])
    sim = Simulator(cfg, [body])
    x = sim.reset().x.clone()
    x[0, 0] = 1.5
    with pytest.raises(ValueError, match="particle 0"):
        sim.reset(x=x)
    assert sim._backend is None  # nothing compiled or launched
    with pytest.raises(ValueError, match="actions"):
        sim.rollout(sim.reset(), torch.zeros(3, 1, 6))
