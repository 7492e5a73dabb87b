"""FNO3d baseline (neuraloperator's FNO): shapes, parameter parity with SFNO, save/load, bad input."""

from __future__ import annotations

import pytest
import torch
from physim.operators import load_operator

from physim.errors import ConfigError

pytest.importorskip("neuralop", reason="neuraloperator is installed by the dev extra (physim-diff[baselines])")

from physim.operators.fno import FNO3d
from physim.operators.sfno import SFNO


def _real_params(m):
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in m.parameters())


def test_shapes_normaliser_and_spectral_weight_parity():
    """Verify (b, x, y, t_in) -> (b, x, y, t_out), the stored normaliser, and that FNO3d's spectral weights
    hold as many real numbers as SFNO's for the same modes and width."""
    torch.manual_seed(0)
    m = FNO3d(modes_x=4, modes_y=4, modes_t=3, width=8, n_layers=2, in_steps=5, out_steps=6)
    x = 3.0 + 2.0 * torch.randn(2, 16, 16, 5)
    m.set_normalizer(x)
    assert m.norm_stats.tolist() == pytest.approx([float(x.mean()), float(x.std())], rel=1e-6)
    y = m(x)
    assert y.shape == (2, 16, 16, 6)
    y.pow(2).mean().backward()
    assert all(p.grad is not None for p in m.parameters())
    fno_spec = sum(p.numel() * 2 for n, p in m.named_parameters() if p.is_complex())
    s = SFNO(modes_x=4, modes_y=4, modes_t=3, width=8, n_layers=2)  # lifting + one Fourier layer
    sfno_spec = sum(c.weight.numel() for c in [s.lift_conv, *s.convs])
    assert fno_spec == sfno_spec
    assert _real_params(m) > 0


def test_save_load_round_trip(tmp_path):
    """Verify FNO3d reloads through physim.operators.load with its normaliser and identical outputs."""
    torch.manual_seed(1)
    m = FNO3d(modes_x=3, modes_y=3, modes_t=2, width=4, n_layers=1, in_steps=3, out_steps=4)
    m.set_normalizer(torch.randn(10) * 5 + 1)
    x = torch.randn(1, 8, 8, 3)
    m2 = load_operator(m.save(tmp_path / "fno.pt"))
    torch.testing.assert_close(m2.norm_stats, m.norm_stats)
    torch.testing.assert_close(m2(x), m(x))


def test_bad_input():
    """Verify a wrong input length, a coarse grid and another output length raise ConfigError."""
    m = FNO3d(modes_x=4, modes_y=4, modes_t=2, width=4, n_layers=1, in_steps=3, out_steps=4)
    with pytest.raises(ConfigError, match=r"x=.*\(1, 16, 16, 5\).*\(batch, nx, ny, 3\)"):
        m(torch.zeros(1, 16, 16, 5))
    with pytest.raises(ConfigError, match=r"x=.*\(1, 4, 4, 3\).*at least \(8, 8\)"):
        m(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ConfigError, match="out_steps"):
        m(torch.zeros(1, 16, 16, 3), out_steps=9)
