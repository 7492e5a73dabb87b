"""System identification: fits, residuals and confidence estimates."""

from __future__ import annotations

import math

import pytest
import torch

from physim.errors import ConfigError
from physim.optim.trajectory.chain_tasks import chain_marker_model
from physim.optim.trajectory.sysid import Param, identify


def _line(noise: float, seed: int = 0):
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    obs = 2.0 * t - 0.5 + noise * torch.randn(50, generator=gen, dtype=torch.float64)
    return t, obs, (lambda p: p["slope"] * t + p["offset"])


def test_gauss_newton_confidence_equals_least_squares_theory():
    """Verify LM on a linear model: the ordinary least-squares fit and its textbook standard errors."""
    t, obs, model = _line(0.1)
    fit = identify(model, obs, {"slope": Param(0.0, log=False), "offset": Param(0.0, log=False)}, "lm", budget=20)
    X = torch.stack([t, torch.ones_like(t)], dim=1)
    coef = torch.linalg.lstsq(X, obs[:, None]).solution[:, 0]
    rss = float(((X @ coef - obs) ** 2).sum())
    cov = rss / (50 - 2) * torch.linalg.inv(X.T @ X)
    assert fit.params["slope"] == pytest.approx(float(coef[0]), abs=1e-8)
    assert fit.params["offset"] == pytest.approx(float(coef[1]), abs=1e-8)
    assert fit.std["slope"] == pytest.approx(math.sqrt(float(cov[0, 0])), rel=1e-5)
    assert fit.std["offset"] == pytest.approx(math.sqrt(float(cov[1, 1])), rel=1e-5)
    assert fit.correlation[0][1] == pytest.approx(float(cov[0, 1] / (cov[0, 0] * cov[1, 1]).sqrt()), rel=1e-5)
    lo, _ = fit.ci95["slope"]
    assert lo == pytest.approx(fit.params["slope"] - 1.96 * fit.std["slope"])


def test_ensemble_confidence_agrees_with_gauss_newton_on_a_linear_model():
    """Verify that the residual bootstrap's spread is of the Gauss-Newton size (within a factor 2)."""
    _, obs, model = _line(0.1, seed=2)
    spec = {"slope": Param(0.0, log=False), "offset": Param(0.0, log=False)}
    gn = identify(model, obs, spec, "lm", budget=20)
    ens = identify(model, obs, spec, "lm", budget=20, confidence="ensemble", ensemble=24, seed=3)
    assert ens.params == pytest.approx(gn.params)
    for name in spec:
        assert 0.5 < ens.std[name] / gn.std[name] < 2.0


def test_chain_stiffness_and_damping_are_recovered_from_noisy_markers():
    """Verify identification on the Warp chain: hidden stiffness/damping, 1 mm noise, truth inside the 95 % CI."""
    simulate = chain_marker_model(particles=4, steps=40, markers=(2, 3))
    truth = {"stiffness": torch.tensor(150.0, dtype=torch.float64), "damping": torch.tensor(0.35, dtype=torch.float64)}
    with torch.no_grad():
        clean = simulate(truth)
    gen = torch.Generator().manual_seed(0)
    observed = clean + 1e-3 * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    spec = {"stiffness": Param(80.0, lower=1.0, upper=1000.0), "damping": Param(0.1, lower=1e-3, upper=10.0)}
    fit = identify(simulate, observed, spec, "lm", budget=45)
    assert fit.residual_rms == pytest.approx(1e-3, rel=0.15)  # down to the noise
    for name, value in truth.items():
        lo, hi = fit.ci95[name]
        assert lo < float(value) < hi, (name, fit.summary())
    assert abs(fit.params["stiffness"] - 150.0) < 0.02 * 150.0
    assert fit.std["stiffness"] < 5.0


def test_identify_with_an_optimize_method_and_bad_input():
    """Verify that any optimize method fits (here CMA-ES) and that bad arguments fail before simulating."""
    _, obs, model = _line(0.01)
    fit = identify(model, obs, {"slope": Param(1.0), "offset": Param(0.0, log=False)}, "cmaes", budget=150)
    assert fit.params["slope"] == pytest.approx(2.0, abs=0.05)
    calls = []

    def counting(p):
        calls.append(1)
        return model(p)

    for kwargs, field in (({"method": "newton"}, "method"), ({"confidence": "vibes"}, "confidence"),
                          ({"budget": 0}, "budget")):
        with pytest.raises(ConfigError, match=field):
            identify(counting, obs, {"slope": 1.0}, **kwargs)
    with pytest.raises(ConfigError, match="init"):
        identify(counting, obs, {"slope": Param(-1.0, log=True)})
    with pytest.raises(ConfigError, match="observed"):
        identify(counting, torch.tensor([1.0, math.nan]), {"slope": 1.0})
    assert calls == []


@pytest.mark.slow
def test_mpm_young_modulus_and_friction_are_recovered_from_noisy_markers():
    """Verify identification on an MPM scene: hidden E and floor friction, 50 µm marker noise, truth in the 95 % CI."""
    from physim.optim.trajectory.mpm_scenes import mpm_block_marker_model

    simulate = mpm_block_marker_model(steps=20)
    truth = {"E": torch.tensor(2e4, dtype=torch.float64), "friction": torch.tensor(0.4, dtype=torch.float64)}
    with torch.no_grad():
        clean = simulate(truth)
    gen = torch.Generator().manual_seed(0)
    observed = clean + 5e-5 * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    spec = {"E": Param(1e4, lower=1e3, upper=1e6), "friction": Param(0.2, lower=0.01, upper=2.0)}
    fit = identify(simulate, observed, spec, "lm", budget=40)
    assert fit.residual_rms == pytest.approx(5e-5, rel=0.15)
    for name, value in truth.items():
        lo, hi = fit.ci95[name]
        assert lo < float(value) < hi, (name, fit.summary())
    assert abs(fit.params["E"] / 2e4 - 1) < 0.02 and abs(fit.params["friction"] / 0.4 - 1) < 0.02
