"""Verify MPM gradients against central finite differences (float64, small scenes).

Each test rolls a small scene (2D 16² grid or 3D 12³, at most a few hundred particles)
for a few control steps through `Simulator.rollout` with checkpointing, and compares
autograd with finite differences of the final positions (`assert_grad_matches_fd`).
Parameters enter as dimensionless multipliers of order one, so that a step of 1e-6 is
a relative perturbation.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from physim.mpm import (
    Body,
    Box,
    BoxCollider,
    DruckerPrager,
    Elastic,
    NeuralMaterial,
    NewtonianFluid,
    PlaneCollider,
    SceneConfig,
    Simulator,
    VonMises,
)
from physim.mpm.materials import polar
from physim.testing import assert_grad_matches_fd

f64 = torch.float64


def d(v):
    return torch.tensor(v, dtype=f64)


def scene(material, *, dim=2, velocity=None, colliders=(), substeps=4, grid=16):
    cfg = SceneConfig(dim=dim, grid=grid, dt=4e-4, substeps=substeps, dtype="float64")
    center = (0.5, 0.42, 0.5)[:dim]
    body = Body(name="b", shape=Box(center=center, size=(0.22,) * dim), material=material,
                velocity=velocity or (0.3, -1.0, 0.2)[:dim])
    floor = PlaneCollider(name="floor", position=(0.0, 0.3, 0.0), friction=0.4)
    return Simulator(cfg, [body], [floor, *colliders])


def roll(sim, state, steps=4, actions=None, k=2):
    return sim.rollout(state, actions, steps=None if actions is not None else steps, checkpoint_every=k).state.x


@pytest.mark.parametrize("model", ["corotated", "neohookean", "stvk"])
def test_elastic_E_nu_initial_velocity_friction(model):
    """Verify d x_T / d(E, ν, v0, floor friction) for each elastic model."""
    sim = scene(Elastic(E=2e4, nu=0.25, model=model))
    v0 = sim.reset().v

    def f(e, nu, v, mu):
        sim.params["b.E"] = 2e4 * e
        sim.params["b.nu"] = nu
        sim.params["floor.friction"] = mu
        return roll(sim, sim.reset(v=v))

    assert_grad_matches_fd(f, [d(1.0), d(0.25), v0, d(0.4)], eps=1e-6, rtol=1e-5)


def test_von_mises_yield_stress_and_E():
    """Verify d x_T / d(σ_y, E) while the plasticine yields (F starts beyond the yield surface)."""
    sim = scene(VonMises(E=5e4, nu=0.3, yield_stress=1e3))
    s0 = sim.reset()
    F0 = torch.diag(torch.tensor([1.08, 0.95], dtype=f64)).expand_as(s0.F).clone()

    def f(sy, e):
        sim.params["b.yield_stress"] = 1e3 * sy
        sim.params["b.E"] = 5e4 * e
        out = roll(sim, dataclasses.replace(sim.reset(), F=F0))
        return out

    assert_grad_matches_fd(f, [d(1.0), d(1.0)], eps=1e-6, rtol=1e-5)


def test_drucker_prager_friction_angle_and_cohesion():
    """Verify d x_T / d(friction angle, cohesion) for sand landing on the floor (return mapping active)."""
    sim = scene(DruckerPrager(E=5e4, nu=0.3, friction_angle=30.0, cohesion=100.0), velocity=(0.5, -1.5))
    s0 = sim.reset()
    F0 = torch.diag(torch.tensor([1.02, 0.97], dtype=f64)).expand_as(s0.F).clone()

    def f(phi, c):
        sim.params["b.friction_angle"] = 30.0 * phi
        sim.params["b.cohesion"] = 100.0 * c
        return roll(sim, dataclasses.replace(sim.reset(), F=F0))

    assert_grad_matches_fd(f, [d(1.0), d(1.0)], eps=1e-6, rtol=1e-5)


def test_newtonian_viscosity_and_bulk_modulus():
    """Verify d x_T / d(η, K) for a viscous fluid with a sheared initial velocity."""
    sim = scene(NewtonianFluid(bulk_modulus=2e3, viscosity=0.5, density=1e3))
    s0 = sim.reset()
    v0 = s0.v.clone()
    v0[:, 0] += 2.0 * (s0.x[:, 1] - 0.42)

    def f(eta, K):
        sim.params["b.viscosity"] = 0.5 * eta
        sim.params["b.bulk_modulus"] = 2e3 * K
        return roll(sim, sim.reset(v=v0))

    assert_grad_matches_fd(f, [d(1.0), d(1.0)], eps=1e-6, rtol=1e-5)


@pytest.mark.parametrize("boundary", ["sticky", "slip", "separate"])
def test_collider_free_scene_with_walls(boundary):
    """Verify d x_T / d(E, v0) without colliders (hand-written grid adjoint), the body hitting the floor wall."""
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=4, dtype="float64", boundary=boundary)
    body = Body(name="b", shape=Box(center=(0.5, 0.31), size=(0.22, 0.22)), material=Elastic(E=2e4, nu=0.25),
                velocity=(0.3, -1.0))
    sim = Simulator(cfg, [body])
    v0 = sim.reset().v

    def f(e, v):
        sim.params["b.E"] = 2e4 * e
        return roll(sim, sim.reset(v=v))

    assert_grad_matches_fd(f, [d(1.0), v0], eps=1e-6, rtol=1e-5)


def test_collider_action_sequence_3d():
    """Verify d x_T / d(actions) of a kinematic box (linear and angular velocity) pressing a 3D jelly."""
    pusher = BoxCollider(name="pusher", position=(0.5, 0.58, 0.5), half_size=(0.08, 0.05, 0.08), kinematic=True,
                         friction=0.3)
    sim = scene(Elastic(E=1e4, nu=0.3), dim=3, velocity=(0.0, 0.0, 0.0), colliders=[pusher], grid=12, substeps=3)
    T = 4
    gen = torch.Generator().manual_seed(1)
    actions = torch.zeros(T, 1, 6, dtype=f64)
    actions[:, 0, 1] = -1.0
    actions += 0.2 * torch.randn(actions.shape, generator=gen, dtype=f64)

    def f(a):
        return roll(sim, sim.reset(), actions=a)

    assert_grad_matches_fd(f, [actions], eps=1e-6, rtol=1e-5)


def test_collider_force_is_differentiable():
    """Verify d(contact force on the pusher)/d(actions) against finite differences."""
    pusher = BoxCollider(name="pusher", position=(0.5, 0.56), half_size=(0.08, 0.05), kinematic=True)
    sim = scene(Elastic(E=1e4, nu=0.3), velocity=(0.0, 0.0), colliders=[pusher])
    actions = torch.zeros(3, 1, 6, dtype=f64)
    actions[:, 0, 1] = -1.5

    def f(a):
        out = sim.rollout(sim.reset(), a, observe=lambda t, s: s.collider_force[1, :2])
        return out.observations

    assert_grad_matches_fd(f, [actions], eps=1e-6, rtol=1e-5)


class TinyLaw(torch.nn.Module):
    """P = R·(μ₀ (S − I) + MLP correction): a rotation-equivariant neural stress (NCLaw-style)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()

    def forward(self, F):
        R = polar(F)
        S = R.transpose(-1, -2) @ F
        I = torch.eye(2, dtype=F.dtype)
        X = 5e3 * (S - I) + 1e3 * self.net((S - I).flatten(1)).view(-1, 2, 2)
        X = 0.5 * (X + X.transpose(-1, -2))
        return R @ X


class _WeightsAsInput(torch.autograd.Function):
    """Test adapter: the rollout as a function of the module's flattened weights.

    Forward loads the weights into the module and rolls out with autograd on; backward
    returns the gradients the simulator delivered to the module's parameters.
    """

    @staticmethod
    def forward(ctx, flat, sim, weights):
        torch.nn.utils.vector_to_parameters(flat.detach(), weights)
        with torch.enable_grad():
            for w in weights:
                w.grad = None
            x = sim.rollout(sim.reset(), steps=3, checkpoint_every=2).state.x
        ctx.x, ctx.weights = x, weights
        return x.detach()

    @staticmethod
    def backward(ctx, gx):
        grads = torch.autograd.grad(ctx.x, ctx.weights, gx)
        return torch.cat([g.reshape(-1) for g in grads]), None, None


def test_neural_material_weights_get_fd_gradients():
    """Verify d x_T / d(MLP weights) of a NeuralMaterial stress, through checkpointed recomputation."""
    law = TinyLaw()
    sim = scene(NeuralMaterial(stress=law, density=1e3, wave_speed_bound=5.0))
    weights = list(law.parameters())
    flat = torch.nn.utils.parameters_to_vector(weights).detach().clone()
    assert_grad_matches_fd(lambda w: _WeightsAsInput.apply(w, sim, weights), [flat], eps=1e-6, rtol=1e-5)
    # and a plain loss.backward() fills .grad of every weight
    torch.nn.utils.vector_to_parameters(flat, weights)
    x = sim.rollout(sim.reset(), steps=2, checkpoint_every=1).state.x
    (x**2).sum().backward()
    assert all(w.grad is not None and bool(torch.isfinite(w.grad).all()) and float(w.grad.abs().sum()) > 0
               for w in weights)


@pytest.mark.parametrize("stretch", [1.0, 1.3], ids=["identity", "uniaxial"])
@pytest.mark.parametrize("material", [Elastic(E=1e4, nu=0.3), VonMises(E=1e4, nu=0.3, yield_stress=200.0)],
                         ids=["corotated", "von_mises"])
def test_svd_backward_finite_for_coincident_singular_values(material, stretch):
    """Verify d x_T / d F0 is finite and matches finite differences when F0 = I or a uniaxial stretch.

    At F = I all singular values coincide; a uniaxial stretch diag(s, 1, 1) has two equal
    ones. The corotated stress differentiates the polar rotation, von Mises the Hencky
    stress and the return mapping (active for the stretch): all through physim's
    isotropic-function adjoint, where the textbook SVD adjoint divides by zero.
    """
    sim = scene(material, dim=3, velocity=(0.0, 0.0, 0.0), grid=12, substeps=2)
    s0 = sim.reset()
    F0 = torch.diag(torch.tensor([stretch, 1.0, 1.0], dtype=f64)).expand_as(s0.F).clone()

    def f(F):
        return roll(sim, dataclasses.replace(sim.reset(), F=F), steps=2, k=1)

    Fg = F0.clone().requires_grad_(True)
    f(Fg).pow(2).sum().backward()
    assert bool(torch.isfinite(Fg.grad).all())
    assert_grad_matches_fd(f, [F0], eps=1e-6, rtol=1e-5)


@pytest.mark.parametrize("F", [torch.eye(3, dtype=f64), torch.diag(torch.tensor([1.3, 1.0, 1.0], dtype=f64))],
                         ids=["identity", "uniaxial"])
def test_torch_polar_backward_finite(F):
    """Verify the torch `polar` used by neural laws: finite, FD-exact gradients at coincident σ."""
    F = F.expand(4, 3, 3).clone()
    assert_grad_matches_fd(polar, [F], eps=1e-6, rtol=1e-6)
    torch.manual_seed(0)
    Fr = F + 0.1 * torch.randn(4, 3, 3, dtype=f64)
    assert_grad_matches_fd(polar, [Fr], eps=1e-6, rtol=1e-6)
