"""Relative Lp, H¹ and H⁻¹ losses: exact values, resolution independence, gradients, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from physim.operators.losses import h1_loss, hminus1_loss, relative_lp, sobolev_loss, sobolev_norm

from physim.errors import ConfigError
from physim.testing import assert_grad_matches_fd


def _sine(n: int, k: int = 1, t: int = 3) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    field = torch.sin(2 * math.pi * k * x)[:, None].expand(n, n)
    return field[None, None].expand(2, t, n, n).clone()  # (batch, time, x, y)


@pytest.mark.parametrize("s", [-1.0, 0.0, 1.0])
def test_sobolev_norm_is_exact_and_resolution_independent(s):
    """Verify ‖sin 2πx‖_{H^s} = √(½(α + 4π²)^s) on [0,1]² at 16² and 128²."""
    alpha = 0.5
    exact = math.sqrt(0.5 * (alpha + 4 * math.pi**2) ** s)
    for n in (16, 128):
        val = float(sobolev_norm(_sine(n), s=s, alpha=alpha))
        assert val == pytest.approx(exact, rel=1e-12)


def test_relative_lp_values_and_absolute_integral():
    """Verify relative L² of 1.1·y against y is 0.1 and the absolute L² integral is resolution independent."""
    y = _sine(32, k=2)
    assert float(relative_lp(1.1 * y, y)) == pytest.approx(0.1, rel=1e-12)
    assert float(relative_lp(y, y)) == 0.0
    assert float(relative_lp(torch.zeros_like(y), y)) == pytest.approx(1.0)
    absolute = [float(relative_lp(_sine(n), torch.zeros_like(_sine(n)), relative=False)) for n in (16, 64)]
    assert absolute[0] == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert absolute[1] == pytest.approx(absolute[0], rel=1e-12)


def test_sobolev_losses_weight_frequencies_as_expected():
    """Verify an error at a high frequency costs more in H¹ and less in H⁻¹ than the same L² error at k = 1."""
    y = _sine(32, k=1)
    low, high = y + 0.1 * _sine(32, k=1), y + 0.1 * _sine(32, k=6)
    l2 = [float(sobolev_loss(p, y)) for p in (low, high)]
    assert l2[0] == pytest.approx(l2[1], rel=1e-10)
    assert float(h1_loss(high, y)) > 5 * float(h1_loss(low, y))
    assert float(hminus1_loss(high, y)) < 0.2 * float(hminus1_loss(low, y))


def test_spatial_dims_for_time_last_layout():
    """Verify the SFNO layout (batch, x, y, t) gives the same value with spatial_dims=(1, 2)."""
    y = _sine(16, k=2) + 0.3
    p = y + 0.05 * torch.randn_like(y)
    a = relative_lp(p, y)
    b = relative_lp(p.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1), spatial_dims=(1, 2))
    assert float(a) == pytest.approx(float(b), rel=1e-12)
    c = sobolev_loss(p, y, s=-1)
    d = sobolev_loss(p.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1), s=-1, spatial_dims=(1, 2))
    assert float(c) == pytest.approx(float(d), rel=1e-12)


def test_loss_gradients_match_finite_differences():
    """Verify gradients of the relative L² and H⁻¹ losses with respect to the prediction."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(2, 2, 8, 8, dtype=torch.float64, generator=gen)
    p = torch.randn(2, 2, 8, 8, dtype=torch.float64, generator=gen)
    assert_grad_matches_fd(lambda q: relative_lp(q, y), [p])
    assert_grad_matches_fd(lambda q: sobolev_loss(q, y, s=-1.0, alpha=0.1), [p])


def test_bad_input_names_shapes():
    """Verify mismatched shapes, too few axes and bad options raise ConfigError naming them."""
    with pytest.raises(ConfigError, match=r"pred=.*\(2, 3, 8, 8\).*\(2, 3, 8, 9\)"):
        relative_lp(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 9))
    with pytest.raises(ConfigError, match="pred=.*at least 3 axes"):
        sobolev_norm(torch.zeros(8, 8))
    with pytest.raises(ConfigError, match="reduction"):
        relative_lp(torch.ones(2, 8, 8), torch.ones(2, 8, 8), reduction="max")
    with pytest.raises(ConfigError, match="spatial_dims"):
        relative_lp(torch.ones(2, 8, 8), torch.ones(2, 8, 8), spatial_dims=(0, 1))
