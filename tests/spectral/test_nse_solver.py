"""Physics, gradients and bad input of the pseudo-spectral Navier–Stokes solver."""

from __future__ import annotations

import math

import pytest
import torch

from physim.errors import ConfigError, SimulationDiverged
from physim.spectral import (
    NavierStokes2D,
    NSEConfig,
    SpectralGrid,
    cn_residual_hat,
    kolmogorov_forcing,
    taylor_green_vorticity,
)
from physim.testing import assert_grad_matches_fd


@pytest.mark.parametrize("order", [1, 2])
def test_taylor_green_decays_as_exact_solution(order):
    """Verify the Taylor–Green vortex decays as ω₀ exp(−2νκ²t) to 1e-6 relative (its advection is zero)."""
    nu, dt, steps = 1e-2, 1e-3, 1000
    sim = NavierStokes2D(NSEConfig(n=16, viscosity=nu, dt=dt, substeps=steps, order=order, forcing="none",
                                   initial="taylor_green"), device="cpu")
    s0 = sim.reset()
    s1 = sim.step(s0)
    kappa = 2 * math.pi
    exact = s0.vorticity * math.exp(-2 * nu * kappa**2 * dt * steps)
    rel = float((s1.vorticity - exact).abs().max() / exact.abs().max())
    assert rel < 1e-6, rel
    assert float(s1.time) == pytest.approx(1.0)
    # The decay is real: a wrong viscous term would fail the 1e-6 bound by far.
    assert float(s1.vorticity.abs().max() / s0.vorticity.abs().max()) == pytest.approx(math.exp(-0.08 * math.pi**2))


def test_taylor_green_on_a_2pi_domain_with_mode_2():
    """Verify the exact decay also holds for L = 2π and the second Taylor–Green mode."""
    nu, dt, steps = 1e-2, 1e-3, 500
    cfg = NSEConfig(n=16, length=2 * math.pi, viscosity=nu, dt=dt, substeps=steps, forcing="none")
    sim = NavierStokes2D(cfg, device="cpu")
    w0 = taylor_green_vorticity(sim.grid, amplitude=0.7, mode=2)
    s1 = sim.step(sim.reset(vorticity=w0))
    exact = w0 * math.exp(-2 * nu * 2.0**2 * dt * steps)
    assert float((s1.vorticity[0] - exact).abs().max() / exact.abs().max()) < 1e-6


def test_steady_kolmogorov_flow_stays_steady():
    """Verify ω = f/(ν|k|²) for the Kolmogorov forcing is a fixed point over 1000 steps of 1e-2 s."""
    nu = 1e-3
    sim = NavierStokes2D(NSEConfig(n=32, viscosity=nu, dt=1e-2, substeps=100, forcing="kolmogorov"), device="cpu")
    f = kolmogorov_forcing(sim.grid)
    w_s = f / (nu * 8 * math.pi**2)  # |k|² = 2·(2π)² for the (1, 1) mode
    s = sim.reset(vorticity=w_s)
    for _ in range(10):
        s = sim.step(s)
    drift = float((s.vorticity[0] - w_s).abs().max() / w_s.abs().max())
    assert drift < 1e-10, drift
    # Control: a 1% perturbation of the amplitude is not steady (the forcing balances only w_s).
    s = sim.step(sim.reset(vorticity=1.01 * w_s))
    assert float((s.vorticity[0] - 1.01 * w_s).abs().max() / w_s.abs().max()) > 1e-4


@pytest.mark.parametrize("initial", ["mcwilliams", "grf"])
def test_energy_decays_monotonically_without_forcing(initial):
    """Verify kinetic energy decreases at every control step of unforced decaying turbulence."""
    length = 2 * math.pi if initial == "mcwilliams" else 1.0
    cfg = NSEConfig(n=32, length=length, viscosity=1e-3, dt=5e-3, substeps=4, forcing="none", initial=initial)
    sim = NavierStokes2D(cfg, device="cpu")
    out = sim.rollout(sim.reset(seed=3, batch=2), steps=100, observe=lambda t, s: sim.grid.energy(s.vorticity))
    energy = torch.cat([sim.grid.energy(sim.reset(seed=3, batch=2).vorticity)[None], out.observations])
    diffs = energy[1:] - energy[:-1]
    assert bool((diffs < 0).all()), diffs.max()
    assert float(energy[-1].min()) > 0.5 * float(energy[0].min())  # decays, but no blow-up or collapse


def test_mcwilliams_energy_normalisation_and_grf_mean():
    """Verify McWilliams fields carry the requested mean energy and GRF fields have zero mean."""
    grid = SpectralGrid.build(32, 2 * math.pi)
    from physim.spectral import gaussian_random_field, mcwilliams_vorticity

    w = mcwilliams_vorticity(grid, 3, energy=0.5, seed=1)
    assert torch.allclose(grid.energy(w) / grid.length**2, torch.full((3,), 0.5, dtype=w.dtype), rtol=1e-10)
    g = gaussian_random_field(SpectralGrid.build(32), 2, seed=0)
    assert float(g.mean(dim=(-2, -1)).abs().max()) < 1e-12
    assert 0.1 < float(g.std()) < 10.0


def test_gradient_of_final_state_loss_matches_finite_differences():
    """Verify d(final-state loss)/d(initial field, viscosity, forcing actions) against central differences."""
    sim = NavierStokes2D(NSEConfig(n=8, viscosity=2e-2, dt=1e-2, substeps=2, forcing="kolmogorov"), device="cpu")
    w0 = sim.reset(seed=0).vorticity
    actions = 0.1 * torch.randn(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.randn(1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def final_loss(w_init, nu, acts):
        sim.params["viscosity"] = nu
        out = sim.rollout(sim.reset(vorticity=w_init), acts)
        return ((out.state.vorticity - target) ** 2).mean()

    nu = torch.tensor(2e-2, dtype=torch.float64)
    assert_grad_matches_fd(final_loss, [w0, nu, actions], eps=1e-6, rtol=1e-6)


def test_checkpointed_rollout_gradient_equals_full_graph():
    """Verify checkpointing every 2 steps gives the same gradient as storing the whole graph."""
    sim = NavierStokes2D(NSEConfig(n=16, dt=1e-2, substeps=2), device="cpu")
    w0 = sim.reset(seed=1).vorticity
    grads = []
    for k in (None, 2):
        w = w0.clone().requires_grad_(True)
        out = sim.rollout(sim.reset(vorticity=w), steps=5, checkpoint_every=k,
                          observe=lambda t, s: s.vorticity.pow(2).mean())
        out.observations.sum().backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-15)


def test_cn_residual_is_second_order_in_frame_spacing():
    """Verify the Crank–Nicolson residual of a fine solver trajectory shrinks 4x when frames halve."""
    sim = NavierStokes2D(NSEConfig(n=32, dt=1e-3, substeps=10, viscosity=1e-3), device="cpu")
    out = sim.rollout(sim.reset(seed=0), steps=40, observe=lambda t, s: s.vorticity)
    frames = out.observations[:, 0]  # (40, 32, 32), every 0.01 s
    norms = []
    for stride in (4, 2):
        sub = frames[::stride]
        r = cn_residual_hat(sim.grid, sub, sim.forcing, 1e-3, 0.01 * stride)
        norms.append(float(sim.grid.norm_sq(r, s=-1).mean().sqrt()))
    ratio = norms[0] / norms[1]
    assert 3.3 < ratio < 4.7, (norms, ratio)


def test_bad_input_names_argument_and_shape():
    """Verify non-square, odd, NaN and non-periodic inputs raise one ConfigError naming them."""
    sim = NavierStokes2D(NSEConfig(n=16), device="cpu")
    with pytest.raises(ConfigError, match=r"vorticity=.*shape \(1, 16, 12\).*square"):
        sim.reset(vorticity=torch.zeros(1, 16, 12, dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"vorticity=.*shape \(2, 8, 8\).*resolution \(16, 16\)"):
        sim.reset(vorticity=torch.zeros(2, 8, 8, dtype=torch.float64))
    bad = torch.zeros(1, 16, 16, dtype=torch.float64)
    bad[0, 3, 4] = float("nan")
    with pytest.raises(ConfigError, match=r"vorticity=.*1 NaN/inf"):
        sim.reset(vorticity=bad)
    with pytest.raises(ConfigError, match=r"n=15 .*even"):
        NSEConfig(n=15)
    with pytest.raises(ConfigError, match=r"w=.*shape \(3, 15, 15\)"):
        cn_residual_hat(sim.grid, torch.zeros(3, 15, 15), None, 1e-3, 0.1)
    with pytest.raises(ConfigError, match="forcing=.*periodic"):
        NavierStokes2D(NSEConfig(n=16), forcing=lambda x, y: x * y, device="cpu")
    with pytest.raises(ConfigError, match="viscosity"):
        NSEConfig(viscosity=-1.0)
    # A periodic user forcing is accepted and used.
    sim2 = NavierStokes2D(NSEConfig(n=16), forcing=lambda x, y: torch.sin(2 * math.pi * x), device="cpu")
    assert float(sim2.forcing.abs().max()) == pytest.approx(1.0, rel=1e-6)


def test_diverging_run_raises_simulation_diverged():
    """Verify a step far beyond the CFL limit raises SimulationDiverged naming the vorticity."""
    sim = NavierStokes2D(NSEConfig(n=32, viscosity=0.0, dt=5.0, substeps=20, forcing="none"), device="cpu")
    s = sim.reset(seed=0, batch=1, vorticity=50 * sim.initial_vorticity(1, seed=0))
    with pytest.raises(SimulationDiverged, match="vorticity"):
        for _ in range(20):
            s = sim.step(s)
