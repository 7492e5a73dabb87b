"""Consensus-based optimisation (CBO): one batched torch implementation for every use.

Particles X (n, d) explore the objective; each moves toward a weighted consensus

    c = Σ_i x_i exp(−α f(x_i)) / Σ_i exp(−α f(x_i))        (computed with logsumexp)

with an Euler–Maruyama step of the CBO dynamics (Pinnau et al. 2017; Carrillo et al. 2021)

    isotropic:   x_i ← x_i − λ dt (x_i − c) + σ √dt ‖x_i − c‖ ξ_i
    anisotropic: x_i ← x_i − λ dt (x_i − c) + σ √dt (x_i − c) ⊙ ξ_i,    ξ_i ~ N(0, I).

The anisotropic noise scales per coordinate, which is what makes CBO work in high
dimension. With ``batch_size`` the consensus is computed on random mini-batches of
particles each step (the random-batch method), which keeps particles diverse.
Riedl et al. ("Gradient is All You Need?", 2023) show CBO behaves like a stochastic
relaxation of gradient descent while using values only.

Three faces, one implementation:

- functional: ``cbo_minimize(f, X0, CBOConfig(...))`` with a batched objective
  ``f(X: (n_particles, dim)) -> (n_particles,)``: this is what training, trajectory
  optimisation (actions flattened to ``dim``) and the benchmarks call;
- ask/tell: ``cbo = CBO(X0, cfg); X = cbo.ask(); cbo.tell(f(X))`` for loops that evaluate
  particles themselves (an environment, a simulator job queue);
- optimizer: `CBOptimizer`, a ``torch.optim.Optimizer`` over a model's parameters
  (``step(closure)`` evaluates the closure once per particle).

Reimplemented from the papers (CBXpy, MIT, was read for conventions; no code copied).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from physim.config import check_int, check_positive, check_range
from physim.errors import ConfigError

__all__ = ["CBO", "CBOConfig", "CBOResult", "CBOptimizer", "cbo_minimize", "cbo_update", "consensus"]


@dataclass(frozen=True, kw_only=True)
class CBOConfig:
    """Hyper-parameters of consensus-based optimisation.

    Attributes:
        steps: Maximum number of CBO iterations (each evaluates every particle once).
        dt: Time step of the Euler–Maruyama discretisation.
        lam: Drift rate λ toward the consensus.
        sigma: Noise strength σ. With anisotropic noise, |x_k − c_k| still contracts almost
            surely for any σ (its log drifts at −λ − σ²/2), so large σ (5–8) is safe; σ = 8
            solved 10-D Rastrigin and up to 30-D Ackley in our benchmark, σ ≤ 1.6 did not.
        alpha: Inverse temperature α of the Gibbs weights (large → consensus ≈ best particle).
        alpha_growth: α is multiplied by this factor after every step (≥ 1), up to `alpha_max`.
        alpha_max: Upper bound for α.
        anisotropic: Coordinate-wise noise (recommended in more than a few dimensions).
        batch_size: Random-batch consensus over mini-batches of this many particles;
            ``None`` uses all particles.
        f_target: Stop once the best value found is ≤ this.
        x_tol: Stop once the consensus moves less than this (Euclidean) in one step.
        seed: Seed of the noise and of the random batches.
    """

    steps: int = 1000
    dt: float = 0.01
    lam: float = 1.0
    sigma: float = 5.0
    alpha: float = 1e4
    alpha_growth: float = 1.0
    alpha_max: float = 1e15
    anisotropic: bool = True
    batch_size: int | None = None
    f_target: float = -math.inf
    x_tol: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_positive("dt", self.dt)
        check_range("lam", self.lam, 0.0)
        check_range("sigma", self.sigma, 0.0)
        check_range("alpha", self.alpha, 0.0)
        check_range("alpha_growth", self.alpha_growth, 1.0)
        check_positive("alpha_max", self.alpha_max)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        if not isinstance(self.f_target, (int, float)) or math.isnan(self.f_target):
            raise ConfigError("f_target", self.f_target, "a number (or -inf to never stop early)")
        check_range("x_tol", self.x_tol, 0.0)
        check_int("seed", self.seed, 0)


@dataclass
class CBOResult:
    """Outcome of `cbo_minimize`.

    Attributes:
        x_best: Best particle ever evaluated, shape (dim,).
        f_best: Its objective value.
        consensus: Final consensus point, shape (dim,).
        particles: Final particles, shape (n_particles, dim).
        steps: Iterations taken.
        n_evaluations: Objective evaluations (particles × steps).
        history: Per step: ``{"step", "f_best", "f_mean", "alpha", "spread"}``.
    """

    x_best: torch.Tensor
    f_best: float
    consensus: torch.Tensor
    particles: torch.Tensor
    steps: int
    n_evaluations: int
    history: list[dict[str, float]] = field(default_factory=list)


def consensus(X: torch.Tensor, fX: torch.Tensor, alpha: float) -> torch.Tensor:
    """Gibbs-weighted mean of particles, stable for any α (logsumexp).

    Args:
        X: Particles, shape (..., n, d).
        fX: Objective values, shape (..., n); non-finite values get zero weight.
        alpha: Inverse temperature α ≥ 0; α = 0 gives the mean, α → ∞ the argmin.

    Returns:
        The consensus point(s), shape (..., d).
    """
    if fX.shape != X.shape[:-1]:
        raise ValueError(f"consensus: values of shape {tuple(fX.shape)} do not match particles {tuple(X.shape)}")
    logits = -alpha * fX.to(X.dtype)
    logits = torch.where(torch.isfinite(logits), logits, torch.full_like(logits, -math.inf))
    if not torch.isfinite(logits).any(dim=-1).all():
        raise ValueError("consensus: every particle of a batch has a non-finite objective value")
    w = torch.softmax(logits, dim=-1)
    return torch.einsum("...n,...nd->...d", w, X)


def cbo_update(
    X: torch.Tensor,
    c: torch.Tensor,
    *,
    lam: float,
    sigma: float,
    dt: float,
    anisotropic: bool,
    noise: torch.Tensor,
) -> torch.Tensor:
    """One Euler–Maruyama step of the CBO dynamics toward consensus `c`.

    Args:
        X: Particles, shape (n, d).
        c: Consensus, shape (d,) or (n, d) (one per particle, for random batches).
        lam, sigma, dt: Drift, noise strength, time step.
        anisotropic: Coordinate-wise (True) or isotropic (False) noise.
        noise: Standard normal samples ξ, shape (n, d).

    Returns:
        New particles, shape (n, d).
    """
    diff = X - c
    if anisotropic:
        diffusion = diff * noise
    else:
        diffusion = diff.norm(dim=-1, keepdim=True) * noise
    return X - lam * dt * diff + sigma * math.sqrt(dt) * diffusion


class CBO:
    """Ask/tell consensus-based optimisation over particles X (n_particles, dim).

    Args:
        X0: Initial particles, shape (n_particles, dim), float; its device and dtype are used.
        config: `CBOConfig`.

    ``ask()`` returns the particles to evaluate; ``tell(values)`` (shape (n_particles,))
    records them, updates the best point and moves the particles.
    """

    def __init__(self, X0: torch.Tensor, config: CBOConfig | None = None):
        if not isinstance(X0, torch.Tensor) or X0.ndim != 2 or X0.shape[0] < 1 or X0.shape[1] < 1:
            raise ConfigError("X0", getattr(X0, "shape", X0), "a tensor of shape (n_particles, dim)")
        if not X0.is_floating_point() or not torch.isfinite(X0).all():
            raise ConfigError("X0", "non-finite or integer tensor", "finite floating-point particles")
        self.config = config or CBOConfig()
        if self.config.batch_size is not None and self.config.batch_size > X0.shape[0]:
            raise ConfigError("batch_size", self.config.batch_size, f"at most n_particles={X0.shape[0]}")
        self.X = X0.detach().clone()
        self.alpha = float(self.config.alpha)
        self.gen = torch.Generator(device=X0.device).manual_seed(self.config.seed)
        self.x_best = self.X[0].clone()
        self.f_best = math.inf
        self.consensus = self.X.mean(0)
        self.steps = 0
        self.n_evaluations = 0
        self.history: list[dict[str, float]] = []
        self.last_move = math.inf

    def ask(self) -> torch.Tensor:
        """The particles to evaluate next, shape (n_particles, dim)."""
        return self.X

    @torch.no_grad()
    def tell(self, values: torch.Tensor) -> None:
        """Record the objective values of `ask()`'s particles and take one CBO step."""
        cfg = self.config
        n = self.X.shape[0]
        fX = torch.as_tensor(values, device=self.X.device).to(self.X.dtype).reshape(-1)
        if fX.shape != (n,):
            raise ValueError(f"CBO.tell: expected {n} values (one per particle), got shape {tuple(fX.shape)}")
        self.n_evaluations += n
        finite = torch.isfinite(fX)
        if finite.any():
            fmasked = torch.where(finite, fX, torch.full_like(fX, math.inf))
            i = int(torch.argmin(fmasked))
            if float(fmasked[i]) < self.f_best:
                self.f_best, self.x_best = float(fmasked[i]), self.X[i].clone()
        if cfg.batch_size is None or cfg.batch_size >= n:
            c = consensus(self.X, fX, self.alpha)
            c_each = c
            new_consensus = c
        else:
            perm = torch.randperm(n, generator=self.gen, device=self.X.device)
            c_each = torch.empty_like(self.X)
            for idx in torch.split(perm, cfg.batch_size):
                c_each[idx] = consensus(self.X[idx], fX[idx], self.alpha)
            new_consensus = consensus(self.X, fX, self.alpha)
        xi = torch.randn(self.X.shape, generator=self.gen, device=self.X.device, dtype=self.X.dtype)
        self.X = cbo_update(
            self.X, c_each, lam=cfg.lam, sigma=cfg.sigma, dt=cfg.dt, anisotropic=cfg.anisotropic, noise=xi
        )
        self.last_move = float((new_consensus - self.consensus).norm())
        self.consensus = new_consensus
        self.steps += 1
        self.history.append(
            {
                "step": self.steps,
                "f_best": self.f_best,
                "f_mean": float(fX[finite].mean()) if finite.any() else math.nan,
                "alpha": self.alpha,
                "spread": float((self.X - new_consensus).norm(dim=-1).mean()),
            }
        )
        self.alpha = min(self.alpha * cfg.alpha_growth, cfg.alpha_max)

    def done(self) -> bool:
        """Whether the step budget, `f_target` or `x_tol` stops the run."""
        cfg = self.config
        return (
            self.steps >= cfg.steps
            or self.f_best <= cfg.f_target
            or (cfg.x_tol > 0 and self.steps > 1 and self.last_move < cfg.x_tol)
        )


def cbo_minimize(
    f: Callable[[torch.Tensor], torch.Tensor],
    X0: torch.Tensor,
    config: CBOConfig | None = None,
    *,
    callback: Callable[[CBO], None] | None = None,
    progress: bool = False,
) -> CBOResult:
    """Minimise a batched objective with consensus-based optimisation.

    Args:
        f: Batched objective ``f(X: (n_particles, dim)) -> (n_particles,)``; evaluated
            under ``torch.no_grad``; non-finite values are treated as +∞.
        X0: Initial particles, shape (n_particles, dim) (e.g. uniform in the search box).
        config: `CBOConfig`.
        callback: Called after every step with the `CBO` state.
        progress: Show a progress bar.

    Returns:
        `CBOResult` with the best point found and the final consensus.

    Example::

        X0 = 6 * torch.rand(200, 20) - 3
        res = cbo_minimize(lambda X: (X ** 2).sum(-1), X0, CBOConfig(steps=500))
        res.x_best, res.f_best
    """
    opt = CBO(X0, config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=opt.config.steps, desc="CBO", leave=False)
    with torch.no_grad():
        while not opt.done():
            opt.tell(f(opt.ask()))
            if callback is not None:
                callback(opt)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(f_best=f"{opt.f_best:.3g}")
    if bar is not None:
        bar.close()
    return CBOResult(
        x_best=opt.x_best, f_best=opt.f_best, consensus=opt.consensus, particles=opt.X,
        steps=opt.steps, n_evaluations=opt.n_evaluations, history=opt.history,
    )


class CBOptimizer(torch.optim.Optimizer):
    """CBO over a model's parameters, as a ``torch.optim.Optimizer``.

    Particles are copies of the flattened parameters, initialised around their current
    values with standard deviation `init_std`. ``step(closure)`` loads each particle into
    the parameters, evaluates ``closure()`` (the loss, no backward) and takes one CBO
    step; afterwards the parameters hold the best particle found so far.

    Args:
        params: Parameters (one group).
        n_particles: Number of particles (closure calls per step).
        init_std: Spread of the initial particles around the current parameters.
        lr: Alias of ``dt`` so the training loop's ``lr`` has a meaning here.
        **config: Other `CBOConfig` fields (``lam``, ``sigma``, ``alpha``, ``anisotropic``…).
    """

    def __init__(self, params: Iterable[torch.Tensor], n_particles: int = 32, init_std: float = 0.1,
                 lr: float = 0.01, **config: Any):
        check_int("n_particles", n_particles, 1)
        check_range("init_std", init_std, 0.0)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ConfigError("lr", lr, "a finite number > 0 (the CBO time step dt)")
        super().__init__(params, {"lr": lr})
        self._params_list = [p for g in self.param_groups for p in g["params"]]
        theta = torch.nn.utils.parameters_to_vector(self._params_list).detach()
        gen = torch.Generator(device=theta.device).manual_seed(int(config.get("seed", 0)))
        X0 = theta + init_std * torch.randn((n_particles, theta.numel()), generator=gen,
                                            device=theta.device, dtype=theta.dtype)
        X0[0] = theta  # keep the starting point among the particles
        fields = set(CBOConfig.__dataclass_fields__) - {"steps", "dt"}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ConfigError(unknown[0], config[unknown[0]], f"a CBOConfig field: {', '.join(sorted(fields))}")
        self.cbo = CBO(X0, CBOConfig(**{"steps": 2**62, "dt": lr, **config}))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> float:  # type: ignore[override]
        """Evaluate every particle with `closure`, take one CBO step; returns the best loss so far."""
        if closure is None:
            raise ValueError("CBOptimizer.step needs a closure returning the loss (no backward)")
        X = self.cbo.ask()
        values = []
        for x in X:
            torch.nn.utils.vector_to_parameters(x, self._params_list)
            out = closure()
            values.append(float(out.item() if isinstance(out, torch.Tensor) else out))
        self.cbo.tell(torch.tensor(values, dtype=X.dtype, device=X.device))
        torch.nn.utils.vector_to_parameters(self.cbo.x_best, self._params_list)
        return self.cbo.f_best
