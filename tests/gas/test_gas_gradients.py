"""Verify the gas grid's gradients against central finite differences (float64, small grids).

The loss is a final-smoke-distribution loss (random weights over the final smoke and
velocity, drawn by `assert_grad_matches_fd`); the inputs are the fan's strength and
center, the initial smoke and velocity and the buoyancy parameter.
"""

from __future__ import annotations

import pytest
import torch
from gas_helpers import F64, small_config

from physim.gas import GasSimulator, GasState
from physim.testing import assert_grad_matches_fd

STEPS = 3


def _initial(sim: GasSimulator, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    res = sim.cfg.resolution
    q0 = torch.rand(*res, 1, generator=gen, dtype=F64)
    v0 = sim.project(0.3 * torch.randn(*res, sim.cfg.dim, generator=gen, dtype=F64))
    return q0, v0


def _rollout_fn(sim: GasSimulator, checkpoint_every=None):
    res = sim.cfg.resolution

    def fn(strength, center, q0, v0, buoyancy):
        sim.params["buoyancy"] = buoyancy
        actions = sim.fan_action(strength=strength, center=center).expand(STEPS, -1, -1)
        s0 = GasState(velocity=v0, smoke=q0, pressure=torch.zeros(res, dtype=F64), time=torch.zeros((), dtype=F64))
        out = sim.rollout(s0, actions, checkpoint_every=checkpoint_every)
        return out.state.smoke, out.state.velocity

    return fn


def _inputs(sim):
    q0, v0 = _initial(sim)
    return [torch.tensor(3.0, dtype=F64), torch.tensor([[0.37, 0.33]], dtype=F64), q0, v0,
            torch.tensor([1.5], dtype=F64)]


@pytest.mark.parametrize("variant", [
    {},                                                          # semi-Lagrangian, 20 Jacobi sweeps, warm start
    {"solver": "cg", "cg_tolerance": 1e-13},                     # CG with its adjoint solve
    {"advection": "maccormack", "backtrace": "rk2", "warm_start": False},
], ids=["jacobi", "cg", "maccormack"])
def test_final_smoke_gradients_match_finite_differences(variant):
    """Verify d(final smoke, velocity)/d(fan strength, fan center, initial smoke, velocity, buoyancy) against FD."""
    sim = GasSimulator(small_config(**variant))
    reports = assert_grad_matches_fd(_rollout_fn(sim), _inputs(sim), eps=1e-6, rtol=1e-5, atol=1e-9)
    assert len(reports) == 6 * 3
    assert all(abs(r.autograd) > 1e-6 for r in reports), "a vanishing directional derivative proves nothing"


def test_checkpointing_does_not_change_gradients():
    """Verify that K = 2 over 5 steps gives the gradients of the un-checkpointed rollout to 1e-10."""
    sim = GasSimulator(small_config())
    inputs = _inputs(sim)

    def grads(k):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        smoke, velocity = _rollout_fn(sim, k)(*leaves)
        loss = (smoke[..., 0] * torch.linspace(0, 1, smoke.shape[1], dtype=F64)).sum() + (velocity**2).sum()
        return torch.autograd.grad(loss, leaves)

    ref, got = grads(None), grads(2)
    for name, a, b in zip(("strength", "center", "smoke", "velocity", "buoyancy"), ref, got):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), f"{name}: max diff {(a - b).abs().max():.3e}"


def test_projection_gradient_matches_finite_differences():
    """Verify the gradient of `project` (Jacobi sweeps with their hand-written adjoint) against FD."""
    sim = GasSimulator(small_config(jacobi_iterations=30))
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(*sim.cfg.resolution, 2, generator=gen, dtype=F64)
    p = torch.randn(sim.cfg.resolution, generator=gen, dtype=F64)
    assert_grad_matches_fd(lambda v, p: sim.project(v, p), [v, p], eps=1e-6, rtol=1e-6, atol=1e-10)


@pytest.mark.slow
def test_3d_gradients_match_finite_differences():
    """Verify the same gradients on a 3D grid (6 × 7 × 5 cells, two steps)."""
    from physim.gas import FanConfig

    sim = GasSimulator(small_config(resolution=(6, 7, 5), fans=(FanConfig(
        center=(0.27, 0.33, 0.21), direction=(0.4, 1.0, -0.2), strength=3.0, radius=0.15, mix=0.3),)))
    gen = torch.Generator().manual_seed(1)
    q0 = torch.rand(6, 7, 5, 1, generator=gen, dtype=F64)
    v0 = sim.project(0.3 * torch.randn(6, 7, 5, 3, generator=gen, dtype=F64))

    def fn(strength, center, q0, v0):
        actions = sim.fan_action(strength=strength, center=center).expand(2, -1, -1)
        s0 = GasState(velocity=v0, smoke=q0, pressure=torch.zeros(6, 7, 5, dtype=F64), time=torch.zeros((), dtype=F64))
        out = sim.rollout(s0, actions)
        return out.state.smoke, out.state.velocity

    assert_grad_matches_fd(fn, [torch.tensor(3.0, dtype=F64), torch.tensor([[0.27, 0.33, 0.21]], dtype=F64), q0, v0],
                           eps=1e-6, rtol=1e-5, atol=1e-9)
