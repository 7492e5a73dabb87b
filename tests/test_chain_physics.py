"""Verify the chain's physics against known solutions, and its handling of bad input."""

from __future__ import annotations

import pytest
import torch

from physim.errors import SimulationDiverged
from physim.springs import ChainConfig, TaichiChain, WarpChain

BACKENDS = [WarpChain, TaichiChain]


@pytest.mark.parametrize("cls", BACKENDS)
def test_hanging_chain_settles_to_static_equilibrium(cls):
    """Verify that a damped hanging chain comes to rest where each spring carries the weight below it.

    Spring j holds the (n−1−j) particles below it, so it is stretched by (n−1−j)·m·g/k.
    """
    cfg = ChainConfig(particle_count=4, substeps=20, stiffness=100.0, damping=1.0, drag=0.05, dt=1e-3)
    sim = cls(cfg)
    s = sim.reset()
    x = torch.zeros_like(s.x)
    x[:, 1] = -torch.arange(cfg.particle_count, dtype=torch.float64) * cfg.rest_length  # hang it straight down
    s = type(s)(x=x, v=s.v, time=s.time)
    out = sim.rollout(s, torch.zeros(400, cfg.particle_count, 2, dtype=torch.float64))  # 8 s
    n, m, g, k = cfg.particle_count, cfg.mass, cfg.gravity, cfg.stiffness
    stretch = torch.tensor([(n - 1 - j) * m * g / k for j in range(n - 1)], dtype=torch.float64)
    expected_y = -torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(cfg.rest_length + stretch, 0)])
    assert torch.allclose(out.state.x[:, 1], expected_y, atol=1e-6)
    assert float(out.state.v.abs().max()) < 1e-5


@pytest.mark.parametrize("cls", BACKENDS)
def test_undamped_chain_energy_error_is_small_and_first_order(cls):
    """Verify energy behaviour of the undamped swinging chain over 2 s.

    Semi-implicit Euler is symplectic and first order: the energy error stays bounded,
    below 1% of the peak kinetic energy, and halves when dt halves.
    """
    errors = []
    for dt, substeps in ((5e-4, 10), (2.5e-4, 20)):
        cfg = ChainConfig(particle_count=6, substeps=substeps, stiffness=100.0, damping=0.0, drag=0.0, dt=dt)
        sim = cls(cfg)
        s0 = sim.reset()
        def energies(t, s, sim=sim):
            return torch.stack([sim.energy(s), 0.5 * sim.cfg.mass * (s.v**2).sum()])

        out = sim.rollout(s0, torch.zeros(400, cfg.particle_count, 2, dtype=torch.float64), observe=energies)
        energy, kinetic = out.observations[:, 0], out.observations[:, 1]
        assert float(kinetic.max()) > 0.5, "the chain must swing"
        errors.append(float((energy - sim.energy(s0)).abs().max() / kinetic.max()))
    assert errors[0] < 1e-2
    assert 1.8 < errors[0] / errors[1] < 2.2, f"energy errors {errors}: expected first-order convergence"


@pytest.mark.parametrize("cls", BACKENDS)
def test_nan_force_raises_simulation_diverged(cls):
    """Verify that a NaN input stops the rollout with the substep and the quantity named."""
    cfg = ChainConfig(particle_count=3, substeps=5)
    sim = cls(cfg)
    forces = torch.zeros(4, 3, 2, dtype=torch.float64)
    forces[2, 1, 0] = float("nan")
    with pytest.raises(SimulationDiverged, match=r"substep 15: particle_[xv]") as err:
        sim.rollout(sim.reset(), forces)
    assert err.value.substep == 15


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"particle_count": 1}, "particle_count=1 is invalid"),
        ({"mass": -1.0}, "mass=-1.0 is invalid"),
        ({"dt": 0.05}, r"dt=0.05 is invalid: expected dt < "),
        ({"substeps": 0}, "substeps=0 is invalid"),
        ({"stiffness": float("nan")}, "stiffness=nan is invalid"),
    ],
)
def test_bad_config_names_field_value_and_range(kwargs, match):
    """Verify that every invalid config value fails on construction with a readable message."""
    with pytest.raises(ValueError, match=match):
        ChainConfig(**kwargs)


def test_wrong_action_shape_is_refused_before_any_kernel():
    """Verify that a wrongly shaped action names the argument and the expected shape."""
    sim = WarpChain(ChainConfig(particle_count=3))
    with pytest.raises(ValueError, match=r"actions has shape \(5, 4, 2\): expected \(5, 3, 2\)"):
        sim.rollout(sim.reset(), torch.zeros(5, 4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"action has shape \(3,\): expected \(3, 2\)"):
        sim.step(sim.reset(), torch.zeros(3))
