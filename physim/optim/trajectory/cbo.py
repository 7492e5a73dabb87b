"""Method ``cbo``: consensus-based optimisation through physim.optim's one CBO implementation.

The particles live in the (optionally coarse) action space of `SearchSpace`, centred on
the initial actions; every particle evaluation is one simulator call. The dynamics,
consensus and noise are those of ``physim.optim.cbo.CBO`` (ask/tell), shared with the
training optimisers: this module only adapts the budget and the action space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physim.config import check_int, check_range
from physim.errors import ConfigError
from physim.optim.trajectory.evaluator import Evaluator
from physim.optim.trajectory.space import SearchSpace, default_sigma

__all__ = ["CBOMethodConfig", "run_cbo"]


@dataclass(frozen=True, kw_only=True)
class CBOMethodConfig:
    """Settings of the ``cbo`` method (the CBO parameters are those of physim.optim.cbo.CBOConfig)."""

    particles: int = 16
    """Particles, each evaluated once per CBO step."""
    sigma: float | None = None
    """Initial spread of the particles [action units]; None: a quarter of the mean bounded range, or 1."""
    knots: int | None = 8
    """Knots per action component along the time axis (None: every entry)."""
    dt: float = 0.5
    """Time step of the CBO dynamics."""
    lam: float = 1.0
    """Drift rate toward the consensus."""
    noise: float = 1.0
    """Noise strength σ of the CBO dynamics."""
    alpha: float = 10.0
    """Initial inverse temperature of the consensus weights (on losses divided by their spread)."""
    alpha_growth: float = 1.1
    """α is multiplied by this every step."""
    anisotropic: bool = True
    """Coordinate-wise noise (recommended in more than a few dimensions)."""

    def __post_init__(self) -> None:
        check_int("particles", self.particles, 2)
        if self.sigma is not None:
            check_range("sigma", self.sigma, 0.0, low_inclusive=False)
        if self.knots is not None:
            check_int("knots", self.knots, 1)
        check_range("dt", self.dt, 0.0, low_inclusive=False)
        check_range("lam", self.lam, 0.0)
        check_range("noise", self.noise, 0.0)
        check_range("alpha", self.alpha, 0.0)
        check_range("alpha_growth", self.alpha_growth, 1.0)


def run_cbo(ev: Evaluator, init: torch.Tensor, cfg: CBOMethodConfig, seed: int, info: dict) -> None:
    """The ``cbo`` method."""
    try:
        from physim.optim.cbo import CBO, CBOConfig
    except ImportError:
        raise ConfigError("method", "cbo", "another method: physim.optim.cbo (issue 10) is not installed") from None
    problem = ev.problem
    ev.phase = "cbo"
    space = SearchSpace(problem, init, cfg.knots)
    gen = torch.Generator().manual_seed(seed)
    sigma0 = cfg.sigma if cfg.sigma is not None else default_sigma(problem)
    X0 = sigma0 * torch.randn(cfg.particles, space.dim, generator=gen, dtype=problem.dtype)
    X0[0] = 0.0  # the initial actions are one of the particles
    cbo = CBO(X0, CBOConfig(steps=10**9, dt=cfg.dt, lam=cfg.lam, sigma=cfg.noise, alpha=cfg.alpha,
                            alpha_growth=cfg.alpha_growth, anisotropic=cfg.anisotropic, seed=seed))
    steps = 0
    while ev.affordable("forward") >= cfg.particles:
        X = cbo.ask()
        values = torch.tensor(ev.batch_loss(space.to_actions(X)), dtype=problem.dtype)
        # The Gibbs weights exp(−α f) depend on the loss scale: normalise by the spread so α is scale-free.
        finite = values[torch.isfinite(values)]
        scale = float(finite.std()) if finite.numel() > 1 and float(finite.std()) > 0 else 1.0
        cbo.tell(values / scale)
        steps += 1
    info["cbo_steps"] = steps
