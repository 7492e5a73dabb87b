"""Verify the Warp and Taichi bridges on real kernels: the mass-spring chains.

Gradients with respect to stiffness, damping, initial positions and per-step forces
are checked against central finite differences in float64, and checkpointed rollouts
must give the same gradients as storing everything.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_python

from physim.springs import ChainConfig, ChainState, TaichiChain, WarpChain
from physim.testing import assert_grad_matches_fd

BACKENDS = {"warp": WarpChain, "taichi": TaichiChain}
CFG = ChainConfig(particle_count=5, substeps=4, stiffness=80.0, damping=0.1, drag=0.01)


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def sim(request):
    return BACKENDS[request.param](CFG)


def _forces(steps: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.05 * torch.randn(steps, CFG.particle_count, 2, generator=gen, dtype=torch.float64)


def _rollout_fn(sim, checkpoint_every=None):
    def fn(stiffness, damping, x0, v0, forces):
        sim.params["stiffness"], sim.params["damping"] = stiffness, damping
        s0 = ChainState(x=x0, v=v0, time=torch.zeros((), dtype=torch.float64))
        out = sim.rollout(s0, forces, checkpoint_every=checkpoint_every, observe=lambda t, s: s.x[-1])
        return out.state.x, out.state.v, out.observations

    return fn


def _inputs(sim, steps=12):
    s0 = sim.reset()
    gen = torch.Generator().manual_seed(1)
    x0 = s0.x + 0.01 * torch.randn(s0.x.shape, generator=gen, dtype=torch.float64)
    v0 = 0.1 * torch.randn(s0.v.shape, generator=gen, dtype=torch.float64)
    v0[0] = 0.0  # the pinned particle does not move
    return [torch.tensor([80.0], dtype=torch.float64), torch.tensor([0.1], dtype=torch.float64), x0, v0,
            _forces(steps)]


def test_gradients_match_finite_differences(sim):
    """Verify d(final state, end trajectory)/d(stiffness, damping, x0, v0, forces) against central differences."""
    reports = assert_grad_matches_fd(_rollout_fn(sim), _inputs(sim), eps=1e-6, rtol=1e-6, atol=1e-9)
    assert len(reports) == 6 * 3
    assert all(abs(r.autograd) > 0 for r in reports), "a zero directional derivative proves nothing"


@pytest.mark.parametrize("k", [1, 7])
def test_checkpointing_does_not_change_gradients(sim, k):
    """Verify that K=1 and K=7 give the gradients of the un-checkpointed rollout to 1e-10."""
    inputs = _inputs(sim, steps=30)  # 30 = 4*7 + 2: the last segment is partial

    def grads(checkpoint_every):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        x, v, obs = _rollout_fn(sim, checkpoint_every)(*leaves)
        loss = (x**2).sum() + (v * x).sum() + obs[::3].sum()
        return torch.autograd.grad(loss, leaves)

    ref, got = grads(None), grads(k)
    for name, a, b in zip(("stiffness", "damping", "x0", "v0", "forces"), ref, got):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), f"{name}: max diff {(a - b).abs().max():.3e}"


def test_checkpointed_forward_equals_plain_forward(sim):
    """Verify that checkpointing changes nothing in the forward result, and stores ceil(T/K) states."""
    s0 = sim.reset()
    a = sim.rollout(s0, _forces(20))
    b = sim.rollout(s0, _forces(20), checkpoint_every=6)
    assert torch.equal(a.state.x, b.state.x) and torch.equal(a.state.v, b.state.v)
    assert (a.checkpoints, b.checkpoints) == (20, 4)


def test_step_is_pure_and_matches_rollout(sim):
    """Verify that step leaves its input untouched and chaining steps equals a rollout."""
    s0 = sim.reset()
    x_before = s0.x.clone()
    forces = _forces(3)
    s = s0
    for f in forces:
        s = sim.step(s, f)
    assert torch.equal(s0.x, x_before)
    assert torch.equal(s.x, sim.rollout(s0, forces).state.x)
    assert float(s.time) == pytest.approx(3 * CFG.control_dt)


def test_warp_and_taichi_trajectories_agree():
    """Verify that both backends integrate the same physics (to round-off)."""
    forces = _forces(25, seed=3)
    w, t = WarpChain(CFG), TaichiChain(CFG)
    a, b = w.rollout(w.reset(), forces).state, t.rollout(t.reset(), forces).state
    assert torch.allclose(a.x, b.x, rtol=0, atol=1e-12) and torch.allclose(a.v, b.v, rtol=0, atol=1e-10)
    assert float((a.x - w.reset().x).abs().max()) > 1e-3, "the chain must actually move"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_checkpointed_2000_step_rollout_uses_a_fifth_of_the_memory(backend):
    """Verify that K=50 over 2000 steps peaks at no more than 1/5 of the memory of storing every step."""

    def probe(k):
        res = run_python("-m", "physim._src.memprobe", "--backend", backend, "--steps", "2000",
                         "--checkpoint-every", str(k))
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    full, ckpt = probe(0), probe(50)
    assert (full["checkpoints"], ckpt["checkpoints"]) == (2000, 40)
    assert full["peak_bytes"] > 20e6, f"the un-checkpointed run should need real memory, got {full}"
    assert ckpt["peak_bytes"] <= full["peak_bytes"] / 5, f"K=50: {ckpt}, no checkpointing: {full}"
    assert ckpt["stiffness_grad"] == pytest.approx(full["stiffness_grad"], rel=1e-10)
