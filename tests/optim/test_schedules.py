"""Verify the learning-rate schedules against their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physim.errors import ConfigError
from physim.optim import lr_multiplier, make_scheduler, refined_form, refined_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lrs(schedule: str, total: int, **kw) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, schedule, total, **kw)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_linear_decay_with_warmup_matches_closed_form():
    """Verify warm-up (s+1)/w then η(1 − (s−w)/(T−w)) and a final fraction."""
    T, w = 20, 5
    got = _lrs("linear", T, warmup_steps=w)
    want = [2.0 * ((s + 1) / w if s < w else 1 - (s - w) / (T - w)) for s in range(T)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got = _lrs("linear", T, final_lr_fraction=0.1)
    np.testing.assert_allclose(got, [2.0 * (0.1 + 0.9 * (1 - s / T)) for s in range(T)], rtol=1e-12)
    cos = _lrs("cosine", T)
    np.testing.assert_allclose(cos, [2.0 * 0.5 * (1 + math.cos(math.pi * s / T)) for s in range(T)], rtol=1e-12)
    assert _lrs("constant", 4) == [2.0] * 4


def test_refined_schedule_closed_forms():
    """Verify that constant gradient norms refine to linear decay and that growing norms anneal earlier.

    With ĝ constant, w_t ∝ Σ_{p>t} 1 = T − 1 − t: exactly linear decay (the paper's worst case).
    """
    T = 50
    for form in ("sgd", "adam"):
        w = refined_schedule(np.full(T, 3.0), form=form)
        np.testing.assert_allclose(w, (T - 1 - np.arange(T)) / (T - 1), atol=1e-12)
    g = np.linspace(1.0, 4.0, T)  # gradient norms grow: w_t = g_t⁻² Σ_{p>t} g_p⁻²
    w = refined_schedule(g, form="sgd", smoothing=0.0)
    raw = g**-2 * np.array([np.sum(g[t + 1 :] ** -2) for t in range(T)])
    np.testing.assert_allclose(w, raw / raw.max(), rtol=1e-12)
    assert w[0] == 1.0 and w[-1] == 0.0
    assert np.all(w <= (T - 1 - np.arange(T)) / (T - 1) + 1e-12)  # below linear decay everywhere
    assert refined_schedule(g, total_steps=200).shape == (200,)
    lrs = _lrs("refined", 10, refined=refined_schedule(np.full(10, 1.0)))
    np.testing.assert_allclose(lrs, 2.0 * (9 - np.arange(10)) / 9, atol=1e-12)
    assert refined_form("SGD") == "sgd" and refined_form("adamw") == "adam"


def test_refined_schedule_median_filter_removes_spikes():
    """Verify a single gradient-norm spike does not change the refined schedule (median filter)."""
    g = np.ones(100)
    spiked = g.copy()
    spiked[40] = 1e3
    np.testing.assert_allclose(refined_schedule(spiked), refined_schedule(g), atol=1e-12)


def test_bad_input():
    """Verify clear errors for unknown schedules, missing multipliers and bad gradient traces."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match=r"^schedule='step'"):
        make_scheduler(opt, "step", 10)
    with pytest.raises(ConfigError, match=r"^refined="):
        make_scheduler(opt, "refined", 10)
    with pytest.raises(ConfigError, match=r"^warmup_steps=-1"):
        make_scheduler(opt, "linear", 10, warmup_steps=-1)
    with pytest.raises(ConfigError, match=r"^grad_norms\[2\]=nan"):
        refined_schedule([1.0, 2.0, float("nan")])
    with pytest.raises(ConfigError, match=r"^grad_norms="):
        refined_schedule([1.0])
    with pytest.raises(ConfigError, match=r"^form="):
        refined_schedule([1.0, 2.0], form="lion")
    assert lr_multiplier("linear", 100, 10) == 0.0
