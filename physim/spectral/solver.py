"""2D periodic incompressible Navier–Stokes in vorticity form, pseudo-spectral, in torch.

    ∂ω/∂t + u·∇ω = νΔω + f,   u = (∂ψ/∂y, −∂ψ/∂x),   −Δψ = ω,   on the periodic square [0, L)².

Space: Fourier pseudo-spectral, products in physical space, 2/3-rule dealiasing of the
nonlinear term. Time: IMEX — Crank–Nicolson for the viscous term, explicit for advection
and forcing: forward Euler (``order=1``, one "CN step") or Heun's predictor–corrector
(``order=2``, the scheme of the FNO data generator). Everything is plain torch, so a
rollout is batched, runs on CPU or CUDA, and is differentiable by autograd with respect
to the initial field, the forcing/actions and the viscosity.

Example::

    sim = NavierStokes2D(NSEConfig(n=64, viscosity=1e-3, dt=1e-3, substeps=200))
    s0 = sim.reset(seed=0, batch=4)                     # GRF initial vorticity, (4, 64, 64)
    out = sim.rollout(s0, steps=50, observe=lambda t, s: s.vorticity)
    frames = out.observations                          # (50, 4, 64, 64), every 0.2 s
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from physim.autodiff import RolloutResult, checkpointed_rollout
from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError, SimulationDiverged
from physim.runtime import device as default_device
from physim.spectral import fields
from physim.spectral.grid import SpectralGrid, check_field

__all__ = ["NSEConfig", "NSEState", "NavierStokes2D", "cn_residual_hat", "imex_step_hat"]

FORCINGS = ("kolmogorov", "none")
INITIAL = ("grf", "mcwilliams", "taylor_green", "zero")


@dataclass(frozen=True, kw_only=True)
class NSEConfig:
    """Settings of the 2D vorticity solver."""

    n: int = 64
    """Grid points per side (even, ≥ 8)."""
    length: float = 1.0
    """Side L of the periodic square [m]; 1 for the FNO benchmark, 2π for McWilliams."""
    viscosity: float = 1e-3
    """Kinematic viscosity ν [m²/s] (initial value of ``params["viscosity"]``)."""
    dt: float = 1e-3
    """Time step [s]."""
    substeps: int = 1
    """Time steps per control step (`step` advances substeps·dt)."""
    order: int = 2
    """Explicit part: 1 = forward Euler (CN–Euler), 2 = Heun predictor–corrector (CN–Heun)."""
    forcing: str = "kolmogorov"
    """Built-in forcing: 'kolmogorov' (0.1(sin 2π(x+y) + cos 2π(x+y))) or 'none'; a simulator
    argument `forcing=` overrides it with a user field or function."""
    forcing_amplitude: float = 0.1
    """Amplitude of the Kolmogorov forcing [1/s²]."""
    initial: str = "grf"
    """Initial vorticity of `reset`: 'grf', 'mcwilliams', 'taylor_green' or 'zero'."""
    alpha: float = 2.5
    """GRF smoothness α (covariance (−Δ + τ²)^{−α})."""
    tau: float = 7.0
    """GRF inverse length scale τ."""
    k0: float = 4.0
    """McWilliams peak wavenumber k₀ (units of 2π/L)."""
    energy: float = 0.5
    """McWilliams mean kinetic energy ½⟨|u|²⟩ [m²/s²]."""
    dtype: str = "float64"
    """Arithmetic: 'float64' (reference, gradient checks) or 'float32'."""
    check_finite: bool = True
    """Raise `SimulationDiverged` after any control step that produced NaN/inf."""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 8 or self.n % 2:
            raise ConfigError("n", self.n, "an even integer >= 8 (the rfft layout and 2/3 dealiasing need an even n)")
        check_positive("length", self.length)
        check_range("viscosity", self.viscosity, 0.0)
        check_positive("dt", self.dt)
        check_int("substeps", self.substeps, 1, 10_000_000)
        check_choice("order", self.order, (1, 2))
        check_choice("forcing", self.forcing, FORCINGS)
        check_range("forcing_amplitude", self.forcing_amplitude)
        check_choice("initial", self.initial, INITIAL)
        check_positive("alpha", self.alpha)
        if self.alpha <= 1:
            raise ConfigError("alpha", self.alpha, "alpha > 1 (otherwise the GRF has infinite variance)")
        check_positive("tau", self.tau)
        check_positive("k0", self.k0)
        check_positive("energy", self.energy)
        check_choice("dtype", self.dtype, ("float64", "float32"))

    @property
    def control_dt(self) -> float:
        """Duration of one control step [s]."""
        return self.dt * self.substeps

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass(frozen=True)
class NSEState:
    """State of the solver.

    Attributes:
        vorticity: ω [1/s], shape (batch, n, n).
        time: Simulated time [s], shape ().
    """

    vorticity: torch.Tensor
    time: torch.Tensor


def imex_step_hat(grid: SpectralGrid, w_hat: torch.Tensor, f_hat: torch.Tensor, viscosity: torch.Tensor | float,
                  dt: float, order: int = 2) -> torch.Tensor:
    """One IMEX time step on vorticity amplitudes (..., n, n//2+1); Crank–Nicolson for νΔ.

    ``order=1``: ω̂' = [(1 + ½dtL)ω̂ + dt(f̂ − N̂(ω))] / (1 − ½dtL), L = −ν|k|².
    ``order=2``: the same as a predictor, then the corrector with ½(N̂(ω) + N̂(ω*)).
    """
    lin = -viscosity * grid.k2
    lhs = 1.0 - 0.5 * dt * lin
    rhs_lin = (1.0 + 0.5 * dt * lin) * w_hat + dt * f_hat
    n0 = grid.advection_hat(w_hat)
    w_star = (rhs_lin - dt * n0) / lhs
    if order == 1:
        return w_star
    n1 = grid.advection_hat(w_star)
    return (rhs_lin - 0.5 * dt * (n0 + n1)) / lhs


def cn_residual_hat(grid: SpectralGrid, w: torch.Tensor, f: torch.Tensor | None, viscosity: float,
                    dt: float, *, time_dim: int = -3) -> torch.Tensor:
    """Residual of one Crank–Nicolson step between consecutive frames, as amplitudes.

    For frames ω⁰ … ω^T spaced `dt` apart (along `time_dim`), returns for j = 0 … T−1

        R^{j+½} = (ω^{j+1} − ω^j)/dt + ½(N(ω^j) + N(ω^{j+1})) − ½νΔ(ω^j + ω^{j+1}) − f,

    with N the dealiased advection of the solver: the residual of the implicit trapezoidal
    (Crank–Nicolson) scheme. It vanishes for a trajectory of that scheme and is O(dt²) for
    the exact solution; its H⁻¹ norm is the a-posteriori error indicator of Spectral-Refiner.

    Args:
        w: Vorticity frames, physical, shape (..., T+1, ..., n, n) with time on `time_dim`.
        f: Forcing (n, n) or broadcastable; None for no forcing.
        viscosity: ν [m²/s].
        dt: Time between consecutive frames [s].

    Returns:
        Residual amplitudes, shape of `w` with T along `time_dim` and (n, n//2+1) last.
    """
    check_field("w", w, grid.n)
    if w.dim() < 3 or w.shape[time_dim] < 2:
        raise ConfigError("w", f"tensor of shape {tuple(w.shape)}", f"at least 2 frames along dim {time_dim}")
    check_positive("dt", dt)
    w_hat = grid.to_spectral(w)
    nl = grid.advection_hat(w_hat)
    t = w_hat.shape[time_dim]

    def sl(a, b):
        return w_hat.narrow(time_dim, a, b - a), nl.narrow(time_dim, a, b - a)

    (w0, n0), (w1, n1) = sl(0, t - 1), sl(1, t)
    res = (w1 - w0) / dt + 0.5 * (n0 + n1) + 0.5 * viscosity * grid.k2 * (w0 + w1)
    if f is not None:
        res = res - grid.to_spectral(f.to(w.dtype))
    return res


class NavierStokes2D:
    """The simulator (physim's contract: config, pure `step`, `rollout`, `params`).

    Args:
        cfg: Settings.
        forcing: Overrides ``cfg.forcing``: a field (n, n) or (batch, n, n) [1/s²], or a
            function f(x, y) of coordinates [m] (checked to be L-periodic).
        device: Torch device (default: `physim.runtime.device()`).

    Attributes:
        grid: The `SpectralGrid`.
        forcing: The forcing field f [1/s²], shape (n, n) or (batch, n, n).
        params: ``{"viscosity": ν}``, a 0-d tensor; set ``requires_grad`` to learn it.
    """

    def __init__(self, cfg: NSEConfig | None = None, *,
                 forcing: torch.Tensor | Callable | None = None, device: torch.device | str | None = None):
        self.cfg = cfg if cfg is not None else NSEConfig()
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = self.cfg.torch_dtype
        self.grid = SpectralGrid.build(self.cfg.n, self.cfg.length, dtype=self.dtype, device=self.device)
        if forcing is not None:
            self.forcing = fields.user_forcing(self.grid, forcing)
        elif self.cfg.forcing == "kolmogorov":
            self.forcing = fields.kolmogorov_forcing(self.grid, self.cfg.forcing_amplitude)
        else:
            self.forcing = torch.zeros(self.cfg.n, self.cfg.n, dtype=self.dtype, device=self.device)
        self.params = {"viscosity": torch.tensor(self.cfg.viscosity, dtype=self.dtype, device=self.device)}
        self._substep_count = 0

    # -- contract -----------------------------------------------------------------------------
    def initial_vorticity(self, batch: int = 1, seed: int | None = None) -> torch.Tensor:
        """Initial vorticity of kind ``cfg.initial``, shape (batch, n, n)."""
        cfg, g = self.cfg, self.grid
        if cfg.initial == "grf":
            return fields.gaussian_random_field(g, batch, alpha=cfg.alpha, tau=cfg.tau, seed=seed)
        if cfg.initial == "mcwilliams":
            return fields.mcwilliams_vorticity(g, batch, k0=cfg.k0, energy=cfg.energy, seed=seed)
        if cfg.initial == "taylor_green":
            return fields.taylor_green_vorticity(g).expand(batch, -1, -1).clone()
        return torch.zeros(batch, cfg.n, cfg.n, dtype=self.dtype, device=self.device)

    def reset(self, seed: int | None = None, *, batch: int = 1, vorticity: torch.Tensor | None = None) -> NSEState:
        """Initial state: `vorticity` (batch, n, n) if given, else a draw of ``cfg.initial``."""
        if vorticity is None:
            w = self.initial_vorticity(batch, seed)
        else:
            check_field("vorticity", vorticity, self.cfg.n)
            w = vorticity.to(self.device, self.dtype)
            if w.dim() == 2:
                w = w[None]
        self._substep_count = 0
        return NSEState(vorticity=w, time=torch.zeros((), dtype=self.dtype, device=self.device))

    def step(self, state: NSEState, action: torch.Tensor | None = None) -> NSEState:
        """Advance one control step (`cfg.substeps` time steps); `state` is not modified.

        Args:
            state: Current state.
            action: Extra forcing [1/s²] added to ``self.forcing`` for this control step,
                shape (n, n) or (batch, n, n); None for none.
        """
        return self._step(state, action, self.params["viscosity"])

    def _step(self, state: NSEState, action, viscosity) -> NSEState:
        g, cfg = self.grid, self.cfg
        f = self.forcing if action is None else self.forcing + action
        f_hat = g.to_spectral(f)
        w_hat = g.to_spectral(state.vorticity)
        for _ in range(cfg.substeps):
            w_hat = imex_step_hat(g, w_hat, f_hat, viscosity, cfg.dt, cfg.order)
        w = g.to_physical(w_hat)
        self._substep_count += cfg.substeps
        if cfg.check_finite and not bool(torch.isfinite(w).all()):
            raise SimulationDiverged(self._substep_count, "vorticity",
                                     f"is not finite (dt={cfg.dt} may violate the CFL limit; max |ω| before the "
                                     f"step {float(state.vorticity.abs().max()):.3g})")
        return NSEState(vorticity=w, time=state.time + cfg.control_dt)

    def rollout(self, state: NSEState, actions: torch.Tensor | None = None, *, steps: int | None = None,
                checkpoint_every: int | None = None, observe=None) -> RolloutResult:
        """Roll out control steps differentiably (w.r.t. the initial state, actions and ν).

        Args:
            state: Initial state.
            actions: Extra forcing per control step, shape (T, n, n) or (T, batch, n, n); None
                for none (then give `steps`).
            steps: Horizon T when `actions` is None.
            checkpoint_every: K of `physim.autodiff.checkpointed_rollout` (memory O(T/K + K)).
            observe: ``observe(t, state) -> tensor`` stacked into ``observations``.
        """
        if actions is not None:
            check_field("actions", actions, self.cfg.n)
        if observe is None:
            observe_fn = None
        else:
            observe_fn = observe
        return checkpointed_rollout(lambda s, a, nu: self._step(s, a, nu), state, actions,
                                    (self.params["viscosity"],), checkpoint_every=checkpoint_every,
                                    observe=observe_fn, steps=steps)
