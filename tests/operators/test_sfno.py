"""SFNO: shapes, time resampling, resolution handling, divergence-free outputs, save/load, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from physim.operators import load_operator
from physim.operators.sfno import SFNO
from physim.operators.spectral_layers import SpectralConv3d, mode_matmul

from physim.errors import ConfigError
from physim.testing import assert_grad_matches_fd


def _smooth(b: int, n: int, t: int, dtype=torch.float32) -> torch.Tensor:
    """Band-limited space-time field (modes ≤ 3), shape (b, n, n, t)."""
    x = torch.arange(n, dtype=dtype) / n
    tt = torch.arange(t, dtype=dtype) / t
    f = (torch.sin(2 * math.pi * x)[:, None, None] * torch.cos(4 * math.pi * x)[None, :, None]
         + 0.5 * torch.cos(2 * math.pi * (x[:, None, None] + 2 * x[None, :, None])) * torch.sin(2 * math.pi * tt))
    return torch.stack([f * (1 + 0.1 * i) for i in range(b)])


def test_output_shapes_and_any_output_horizon():
    """Verify (b, x, y, t_in) -> (b, x, y, t_out) for a default and a per-call number of output steps."""
    torch.manual_seed(0)
    m = SFNO(modes_x=4, modes_y=4, modes_t=3, width=8, latent_steps=6, out_steps=7)
    x = torch.randn(2, 16, 16, 5)
    assert m(x).shape == (2, 16, 16, 7)
    assert m(x, out_steps=13).shape == (2, 16, 16, 13)
    assert m(torch.randn(1, 32, 24, 9)).shape == (1, 32, 24, 7)  # any resolution, any input length


def test_time_refined_output_matches_the_coarse_frames():
    """Verify sampling the output r times denser in time contains the ordinary output at every r-th sample."""
    torch.manual_seed(1)
    m = SFNO(modes_x=4, modes_y=4, modes_t=4, width=8, out_steps=6).double()
    x = torch.randn(2, 16, 16, 5, dtype=torch.float64)
    latent, last = m.latent(x), x[:, None, ..., -1:]
    coarse = m.output(latent, last, 6)
    fine = m.output(latent, last, 6, time_refine=3)
    assert fine.shape[-1] == 3 * 6 + 1
    torch.testing.assert_close(fine[..., 3::3], coarse, rtol=1e-10, atol=1e-12)


def test_spectral_conv_is_resolution_invariant_for_band_limited_inputs():
    """Verify the spectral layer gives the same values at shared points of 16² and 64² grids."""
    torch.manual_seed(2)
    conv = SpectralConv3d(1, 3, 4, 4, 3).double()
    coarse = conv(_smooth(2, 16, 6, torch.float64)[:, None])
    fine = conv(_smooth(2, 64, 6, torch.float64)[:, None])
    torch.testing.assert_close(fine[..., ::4, ::4, :], coarse, rtol=1e-10, atol=1e-12)
    # The time axis is resampled through the inverse FFT: twice the samples, same function.
    fine_t = conv(_smooth(2, 16, 6, torch.float64)[:, None], out_steps=12)
    torch.testing.assert_close(fine_t[..., ::2], coarse, rtol=1e-10, atol=1e-12)


def test_sfno_zero_shot_on_a_finer_grid_stays_close():
    """Verify SFNO on a smooth field at 64² agrees with its 32² output at shared points (only pointwise
    nonlinearities alias differently), far closer than the outputs of two different inputs."""
    torch.manual_seed(3)
    m = SFNO(modes_x=4, modes_y=4, modes_t=3, width=8, out_steps=4)
    with torch.no_grad():
        a, b = m(_smooth(1, 32, 5)), m(_smooth(1, 64, 5))[:, ::2, ::2]
        other = m(0.5 * _smooth(1, 32, 5))
    assert float((a - b).norm()) < 0.05 * float((a - other).norm())


def test_divergence_free_velocity_outputs():
    """Verify the Helmholtz projection makes 2-channel outputs spectrally divergence-free."""
    torch.manual_seed(4)
    m = SFNO(modes_x=4, modes_y=4, modes_t=3, width=8, channels=2, divergence_free=True, out_steps=3).double()
    with torch.no_grad():
        u = m(torch.randn(2, 2, 16, 16, 4, dtype=torch.float64))
    assert u.shape == (2, 2, 16, 16, 3)
    k = torch.fft.fftfreq(16, d=1 / 16, dtype=torch.float64)
    uh = torch.fft.fft2(u, dim=(2, 3))
    div = k[:, None, None] * uh[:, 0] + k[None, :, None] * uh[:, 1]
    assert float(div.abs().max()) < 1e-10 * float(uh.abs().max())


def test_every_parameter_gets_a_gradient_and_grads_match_fd():
    """Verify every SFNO parameter receives a gradient, and the spectral layer's gradient matches FD."""
    torch.manual_seed(5)
    m = SFNO(modes_x=3, modes_y=3, modes_t=2, width=6, out_steps=3)
    m(torch.randn(2, 8, 8, 4)).pow(2).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, missing
    conv = SpectralConv3d(2, 2, 2, 2, 2, bias=True).double()
    w = conv.weight.detach().clone()

    def apply(v, weight):
        return torch.func.functional_call(conv, {"weight": weight, "bias": conv.bias}, (v,), {"out_steps": 5})

    assert_grad_matches_fd(lambda v: conv(v, out_steps=5), [torch.randn(1, 2, 8, 8, 4, dtype=torch.float64)])
    v = torch.randn(1, 2, 8, 8, 4, dtype=torch.float64)
    a = torch.randn(3, 2, 5, 4, dtype=torch.complex128)
    b = torch.randn(2, 4, 5, 4, dtype=torch.complex128)
    torch.testing.assert_close(mode_matmul(a, b), torch.einsum("bixy,ioxy->boxy", a, b))
    assert_grad_matches_fd(lambda ww: apply(v, ww), [w])


def test_save_and_load_round_trip(tmp_path):
    """Verify a saved SFNO reloads through physim.operators.load with identical outputs."""
    torch.manual_seed(6)
    m = SFNO(modes_x=3, modes_y=3, modes_t=2, width=6, out_steps=3)
    x = torch.randn(1, 8, 8, 4)
    path = m.save(tmp_path / "sfno.pt")
    m2 = load_operator(path)
    assert isinstance(m2, SFNO) and m2.metadata()["kwargs"]["width"] == 6
    torch.testing.assert_close(m2(x), m(x))


def test_bad_input_names_argument_and_shape():
    """Verify wrong layouts, grids too coarse for the modes, NaN inputs and bad settings raise ConfigError."""
    m = SFNO(modes_x=6, modes_y=6, modes_t=3, width=8)
    with pytest.raises(ConfigError, match=r"x=.*\(2, 16, 16\).*\(batch, nx, ny, t\)"):
        m(torch.zeros(2, 16, 16))
    with pytest.raises(ConfigError, match=r"x=.*\(1, 1, 8, 8, 4\).*at least \(12, 12\)"):
        m(torch.zeros(1, 8, 8, 4))
    bad = torch.zeros(1, 16, 16, 4)
    bad[0, 1, 1, 1] = float("inf")
    with pytest.raises(ConfigError, match="NaN/inf"):
        m(bad)
    with pytest.raises(ConfigError, match="divergence_free"):
        SFNO(channels=1, divergence_free=True)
    with pytest.raises(ConfigError, match="width"):
        SFNO(width=3)


def test_trains_through_the_shared_loop_and_resumes(tmp_path):
    """Verify SFNO learns solver trajectories through physim's Trainer, and a rerun resumes, not restarts."""
    from physim.operators.losses import relative_lp
    from physim.operators.training import TrainConfig, Trainer

    from physim.spectral import NavierStokes2D, NSEConfig
    from physim.spectral.data import SpaceTimeWindows

    sim = NavierStokes2D(NSEConfig(n=16, dt=0.02, substeps=5, dtype="float32"), device="cpu")
    out = sim.rollout(sim.reset(seed=0, batch=8), steps=8, observe=lambda t, s: s.vorticity)
    data = SpaceTimeWindows(out.observations.transpose(0, 1), t_in=4, t_out=4)
    torch.manual_seed(0)
    model = SFNO(modes_x=3, modes_y=3, modes_t=2, width=6, latent_steps=4, out_steps=4)

    def loss(m, b):
        return relative_lp(m(b["x"]), b["y"], spatial_dims=(1, 2))

    cfg = TrainConfig(run_dir=tmp_path / "run", epochs=3, batch_size=4, lr=1e-2, log="csv", progress=False)
    first = Trainer(model, cfg, data, loss_fn=loss).fit()
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    again = Trainer(model, TrainConfig(**{**cfg.to_dict(), "epochs": 4}), data, loss_fn=loss).fit()
    assert len(again.history) == 4 and again.history[:3] == first.history
    assert isinstance(load_operator(again.best_model_path), SFNO)
