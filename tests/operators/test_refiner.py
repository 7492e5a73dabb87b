"""Spectral-Refiner: widened layer reproduces the model, residual as error indicator, label-free refinement."""

from __future__ import annotations

import pytest
import torch
from physim.operators.losses import relative_lp
from physim.operators.refiner import RefinerConfig, SpectralRefiner, _WideOutput
from physim.operators.sfno import SFNO

from physim.errors import ConfigError
from physim.spectral import NavierStokes2D, NSEConfig


def _model(seed: int = 0) -> SFNO:
    torch.manual_seed(seed)
    m = SFNO(modes_x=3, modes_y=3, modes_t=3, width=6, latent_steps=4, out_steps=4).double()
    with torch.no_grad():  # a non-trivial trained-looking output layer (bias and weights nonzero)
        m.output.conv.bias.normal_(0, 1e-2)
        m.output.conv.weight.normal_(0, 1e-1)
    return m


@pytest.mark.parametrize("refine_t", [1, 3])
def test_widened_layer_starts_as_the_trained_layer(refine_t):
    """Verify the widened copy (trained modes copied to the same frequencies, new ones zero) reproduces
    the frozen output layer exactly, including the negative-frequency quadrants."""
    m = _model()
    x = torch.randn(2, 16, 16, 5, dtype=torch.float64)
    latent, last = m.latent(x), x[:, None, ..., -1:]
    wide = _WideOutput(m.output, 2, (7, 6, 5))
    ref = m.output(latent, last, 4, time_refine=refine_t)
    got = wide(latent, last, 4, refine_t)
    torch.testing.assert_close(got[..., -ref.shape[-1]:], ref, rtol=1e-10, atol=1e-12)


def _solver_trajectory(frames: int = 9, n: int = 16):
    sim = NavierStokes2D(NSEConfig(n=n, viscosity=1e-2, dt=2.5e-3, substeps=20, forcing="kolmogorov"), device="cpu")
    out = sim.rollout(sim.reset(seed=0, batch=2), steps=frames, observe=lambda t, s: s.vorticity)
    return out.observations.permute(1, 2, 3, 0), sim  # (batch, n, n, frames), 0.05 s apart


def test_residual_norm_indicates_error():
    """Verify the H⁻¹ residual of a solver trajectory is far below that of a perturbed copy and grows
    with the perturbation (the a-posteriori property)."""
    traj, sim = _solver_trajectory()
    ref = SpectralRefiner(_model(), viscosity=1e-2, frame_dt=0.05, forcing=sim.forcing)
    exact = ref.residual_norm(traj, 0.05)
    noise = torch.randn_like(traj) * traj.std()
    small = ref.residual_norm(traj + 1e-2 * noise, 0.05)
    large = ref.residual_norm(traj + 1e-1 * noise, 0.05)
    assert bool((exact < 0.1 * small).all()), (exact, small)
    assert bool((small < large).all())


def test_refine_lowers_the_residual_and_the_error_without_labels():
    """Verify label-free refinement of an untrained model's output layer lowers every sample's H⁻¹
    residual and its error against the solver's true continuation (the labels are never shown to
    the refiner), and leaves the frozen model untouched."""
    traj, sim = _solver_trajectory(frames=9)
    m = _model(1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    cfg = RefinerConfig(iterations=40, lr_weight=1e-2, lr_bias=1e-2, time_refine=1)
    ref = SpectralRefiner(m, viscosity=1e-2, frame_dt=0.05, forcing=sim.forcing, cfg=cfg)
    x, y = traj[..., :5], traj[..., 5:9]
    out = ref.refine(x, out_steps=4)
    assert out.prediction.shape == (2, 16, 16, 4)
    assert bool((out.residual_after < 0.1 * out.residual_before).all()), (out.residual_before, out.residual_after)
    e0 = relative_lp(out.initial_prediction, y, spatial_dims=(1, 2), reduction="none")
    e1 = relative_lp(out.prediction, y, spatial_dims=(1, 2), reduction="none")
    # Measured: relative L² 1.0 -> 0.08 (cosine-decayed Adam, 40 iterations).
    assert bool((e1 < 0.2 * e0).all()), (e0, e1)
    assert len(out.history) == 41
    torch.testing.assert_close(out.residual_before, ref.estimate(x, out_steps=4))
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_bad_input():
    """Verify non-square inputs, vector-valued models and narrowing the layer raise ConfigError."""
    m = _model()
    ref = SpectralRefiner(m, viscosity=1e-3, frame_dt=0.1)
    with pytest.raises(ConfigError, match=r"x=.*\(1, 16, 12, 5\).*square"):
        ref.refine(torch.zeros(1, 16, 12, 5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="model"):
        SpectralRefiner(SFNO(channels=2, width=8), viscosity=1e-3, frame_dt=0.1)
    with pytest.raises(ConfigError, match="modes"):
        _WideOutput(m.output, 1, (2, 2, 2))
    with pytest.raises(ConfigError, match="time_refine"):
        RefinerConfig(time_refine=0)
    with pytest.raises(ConfigError, match="schedule"):
        RefinerConfig(schedule="linear")
