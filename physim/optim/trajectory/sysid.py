"""System identification: fit physical parameters of any simulator to an observed trajectory.

    fit = identify(simulate, observed, {"stiffness": Param(100.0, lower=1.0), "damping": Param(0.5)},
                   method="lm", budget=60)
    fit.params, fit.std, fit.ci95, fit.residual_rms

``simulate(params) -> tensor`` maps a dict of 0-d float64 tensors (requires_grad set when
the method uses gradients) to a prediction with the shape of `observed` (particle
positions, tracked markers...). The loss is the mean squared residual. Positive
parameters are fitted in log space (scale-free steps, positivity for free).

Methods: every `optimize` method (``gradient``, ``cem``, ``cmaes``, ``hybrid``, ``cbo``,
``zo``) over the parameter vector, and ``lm``: Levenberg–Marquardt with a central
finite-difference Jacobian (2p simulations per Jacobian), usually the cheapest for a few
parameters. The budget counts simulations as in `optimize`.

Confidence:

- ``"gauss_newton"``: the covariance σ² (JᵀJ)⁻¹ of the fit parameters, with J the
  Jacobian of the residuals (central differences at the optimum, 2p simulations) and σ²
  the residual variance RSS / (m − p) (or ``noise_std²`` if known); standard deviations
  and 95 % intervals follow (through the exponential for log-scale parameters);
- ``"ensemble"``: a residual bootstrap: refit `ensemble` times to the prediction plus
  resampled residuals; the spread of the refits gives the standard deviations and
  2.5/97.5 percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from physim.config import check_choice, check_int
from physim.errors import ConfigError
from physim.optim.trajectory.problem import TorchLossProblem

__all__ = ["IdentifyResult", "Param", "identify"]


@dataclass(frozen=True)
class Param:
    """One parameter to identify.

    Attributes:
        init: Initial guess (SI units).
        lower, upper: Bounds, or None.
        log: Fit log(value) (default: when the initial guess is positive and the lower bound is not negative).
    """

    init: float
    lower: float | None = None
    upper: float | None = None
    log: bool | None = None

    def uses_log(self) -> bool:
        if self.log is not None:
            return self.log
        return self.init > 0 and (self.lower is None or self.lower >= 0)


@dataclass
class IdentifyResult:
    """Outcome of `identify`.

    Attributes:
        params: Fitted values.
        initial: Initial guesses.
        std: Standard deviation of each fitted value.
        ci95: 95 % interval of each fitted value.
        correlation: Correlation matrix of the fit parameters (in fit space), rows in `names` order.
        names: Parameter names, in order.
        loss: Mean squared residual at the fit.
        residual_rms: Root mean square residual (units of the observation).
        noise_std: Noise level used for the confidence (estimated or given).
        confidence: ``"gauss_newton"`` or ``"ensemble"``.
        n_observations: Number of observed values m.
        simulations: Simulations used (fit + confidence).
        optimization: The `Result` of the fit (for ``lm``: its iterations as a history dict).
    """

    params: dict[str, float]
    initial: dict[str, float]
    std: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    correlation: list[list[float]]
    names: list[str]
    loss: float
    residual_rms: float
    noise_std: float
    confidence: str
    n_observations: int
    simulations: int
    optimization: object = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A small table: name, initial, fitted, std, 95 % interval."""
        rows = [f"{'parameter':<14} {'initial':>12} {'fitted':>12} {'std':>11} {'95% interval':>27}"]
        for n in self.names:
            lo, hi = self.ci95[n]
            rows.append(f"{n:<14} {self.initial[n]:>12.6g} {self.params[n]:>12.6g} {self.std[n]:>11.3g} "
                        f"[{lo:>11.6g}, {hi:>11.6g}]")
        rows.append(f"residual rms {self.residual_rms:.4g}, noise std {self.noise_std:.4g} ({self.confidence}), "
                    f"{self.simulations} simulations")
        return "\n".join(rows)


class _Space:
    """Parameter dict ↔ fit vector z (log for positive parameters)."""

    def __init__(self, params: dict[str, Param | float]):
        if not isinstance(params, dict) or not params:
            raise ConfigError("params", params, "a non-empty dict name -> Param or initial value")
        self.names = list(params)
        self.specs = []
        for name, p in params.items():
            spec = p if isinstance(p, Param) else Param(float(p))
            if not math.isfinite(spec.init):
                raise ConfigError(f"params[{name!r}].init", spec.init, "a finite number")
            if spec.lower is not None and spec.upper is not None and spec.lower >= spec.upper:
                raise ConfigError(f"params[{name!r}]", (spec.lower, spec.upper), "lower < upper")
            if spec.uses_log() and spec.init <= 0:
                raise ConfigError(f"params[{name!r}].init", spec.init, "a positive value for a log-scale parameter")
            self.specs.append(spec)

    def to_z(self, values) -> torch.Tensor:
        return torch.tensor([math.log(v) if s.uses_log() else v for v, s in zip(values, self.specs)],
                            dtype=torch.float64)

    def to_params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: (z[i].exp() if s.uses_log() else z[i]) for i, (n, s) in enumerate(zip(self.names, self.specs))}

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        def tr(v, s, default):
            if v is None:
                return default
            if s.uses_log():
                return math.log(v) if v > 0 else -math.inf
            return v

        lo = torch.tensor([tr(s.lower, s, -math.inf) for s in self.specs], dtype=torch.float64)
        hi = torch.tensor([tr(s.upper, s, math.inf) for s in self.specs], dtype=torch.float64)
        return lo, hi


def _residual_fn(simulate, observed: torch.Tensor, space: _Space):
    def residual(z: torch.Tensor) -> torch.Tensor:
        pred = simulate(space.to_params(z))
        if not isinstance(pred, torch.Tensor) or pred.shape != observed.shape:
            raise ValueError(f"simulate returned shape {tuple(getattr(pred, 'shape', ()))}, "
                             f"expected the observation's {tuple(observed.shape)}")
        return (pred.to(observed) - observed).reshape(-1)

    return residual


def _jacobian(residual, z: torch.Tensor, step: float) -> torch.Tensor:
    """Central finite-difference Jacobian of the residuals in fit space, shape (m, p); 2p simulations."""
    cols = []
    with torch.no_grad():
        for i in range(z.numel()):
            e = torch.zeros_like(z)
            e[i] = step
            cols.append((residual(z + e) - residual(z - e)) / (2 * step))
    return torch.stack(cols, dim=1)


def _levenberg_marquardt(residual, z0, lo, hi, budget: int, step: float) -> tuple[torch.Tensor, list[dict], int]:
    z = z0.clone()
    p = z.numel()
    with torch.no_grad():
        r = residual(z)
    sims, lam, history = 1, 1e-3, []
    loss = float((r**2).mean())
    history.append({"simulations": sims, "loss": loss, "lambda": lam})
    while sims + 2 * p + 1 <= budget:
        J = _jacobian(residual, z, step)
        sims += 2 * p
        A, g = J.T @ J, J.T @ r
        improved = False
        while sims + 1 <= budget:
            delta = torch.linalg.solve(A + lam * torch.diag(torch.diag(A).clamp(min=1e-12)), -g)
            z_new = torch.minimum(torch.maximum(z + delta, lo), hi)
            with torch.no_grad():
                r_new = residual(z_new)
            sims += 1
            new_loss = float((r_new**2).mean()) if bool(torch.isfinite(r_new).all()) else math.inf
            if new_loss < loss:
                z, r, loss, lam = z_new, r_new, new_loss, max(lam / 10, 1e-9)
                improved = True
                break
            lam *= 10
            if lam > 1e9:
                break
        history.append({"simulations": sims, "loss": loss, "lambda": lam})
        if not improved or float(delta.abs().max()) < 1e-10:
            break
    return z, history, sims


def identify(
    simulate: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    observed: torch.Tensor,
    params: dict[str, Param | float],
    method: str = "lm",
    *,
    budget: int = 100,
    seed: int = 0,
    config=None,
    grad_cost: float | None = None,
    confidence: str = "gauss_newton",
    ensemble: int = 8,
    noise_std: float | None = None,
    fd_step: float = 1e-4,
) -> IdentifyResult:
    """Fit `params` so that ``simulate(params)`` matches `observed`; see the module docstring.

    Args:
        simulate: Parameters → prediction with the shape of `observed`.
        observed: The observation (float tensor).
        params: Name → `Param` (or an initial value).
        method: ``"lm"`` or any method of `optimize`.
        budget: Simulations for the fit (the confidence estimate uses more: 2p for
            ``gauss_newton``, `ensemble` × budget for ``ensemble``).
        seed: Seed of the method (and of the bootstrap).
        config: Settings of an `optimize` method.
        grad_cost: As in `optimize`.
        confidence: ``"gauss_newton"`` or ``"ensemble"``.
        ensemble: Refits of the bootstrap.
        noise_std: Known observation noise; None estimates it from the residuals.
        fd_step: Central-difference step in fit space (relative for log parameters).

    Raises:
        ConfigError: Bad parameters, method, budget or confidence, before any simulation.
    """
    from physim.optim.trajectory.api import METHODS, optimize

    check_choice("method", method, ("lm", *METHODS))
    check_choice("confidence", confidence, ("gauss_newton", "ensemble"))
    check_int("budget", budget, 1)
    check_int("ensemble", ensemble, 2)
    if not isinstance(observed, torch.Tensor) or not observed.is_floating_point() or observed.numel() == 0:
        raise ConfigError("observed", type(observed).__name__, "a non-empty floating-point tensor")
    if not bool(torch.isfinite(observed).all()):
        raise ConfigError("observed", "non-finite values", "finite numbers")
    space = _Space(params)
    observed = observed.detach().to(torch.float64)
    z0 = space.to_z([s.init for s in space.specs])
    lo, hi = space.bounds()

    def fit(target: torch.Tensor, start: torch.Tensor, fit_seed: int):
        residual = _residual_fn(simulate, target, space)
        if method == "lm":
            z, history, sims = _levenberg_marquardt(residual, start, lo, hi, budget, fd_step)
            return z, {"method": "lm", "history": history}, sims
        problem = TorchLossProblem(lambda zz: (residual(zz) ** 2).mean(), (len(space.names),),
                                   lower=lo, upper=hi, name="identify")
        res = optimize(problem, start, method, budget, fit_seed, config=config, grad_cost=grad_cost)
        return res.best_actions, res, len(res.history)

    z, optimization, sims = fit(observed, z0, seed)
    residual = _residual_fn(simulate, observed, space)
    with torch.no_grad():
        r = residual(z)
    sims += 1
    m, p = r.numel(), z.numel()
    loss = float((r**2).mean())
    sigma = noise_std if noise_std is not None else math.sqrt(float((r**2).sum()) / max(m - p, 1))
    fitted = {n: float(v) for n, v in space.to_params(z).items()}

    if confidence == "gauss_newton":
        J = _jacobian(residual, z, fd_step)
        sims += 2 * p
        cov = sigma**2 * torch.linalg.pinv(J.T @ J)
        std_z = cov.diagonal().clamp(min=0).sqrt()
        std, ci = {}, {}
        for i, (n, s) in enumerate(zip(space.names, space.specs)):
            zi, si = float(z[i]), float(std_z[i])
            if s.uses_log():
                std[n] = fitted[n] * si
                ci[n] = (math.exp(zi - 1.96 * si), math.exp(zi + 1.96 * si))
            else:
                std[n] = si
                ci[n] = (zi - 1.96 * si, zi + 1.96 * si)
        d = std_z.clamp(min=1e-300)
        corr = (cov / (d[:, None] * d[None, :])).tolist()
    else:
        with torch.no_grad():
            pred = (observed.reshape(-1) + r).reshape(observed.shape)
        gen = torch.Generator().manual_seed(seed)
        fits = []
        for k in range(ensemble):
            idx = torch.randint(0, m, (m,), generator=gen)
            target = pred - r[idx].reshape(observed.shape)
            zk, _, s_k = fit(target, z, seed + 1 + k)
            sims += s_k
            fits.append(zk)
        Z = torch.stack(fits)
        values = torch.stack([torch.stack(list(space.to_params(zk).values())) for zk in fits])
        std = {n: float(values[:, i].std()) for i, n in enumerate(space.names)}
        ci = {n: (float(values[:, i].quantile(0.025)), float(values[:, i].quantile(0.975)))
              for i, n in enumerate(space.names)}
        corr = torch.corrcoef(Z.T).reshape(p, p).tolist() if p > 1 else [[1.0]]
    return IdentifyResult(
        params=fitted, initial={n: s.init for n, s in zip(space.names, space.specs)}, std=std, ci95=ci,
        correlation=corr, names=space.names, loss=loss, residual_rms=math.sqrt(loss), noise_std=sigma,
        confidence=confidence, n_observations=m, simulations=sims, optimization=optimization,
    )
