"""Spectral-Refiner: label-free fine-tuning of SFNO's output layer on the H⁻¹ residual.

Cao et al. (ICLR 2025): train SFNO for a few epochs, then freeze it, cache the latent
trajectory entering its output layer, replace that layer by a copy *widened to (near)
full modes* (the trained low modes copied, the new ones starting at zero), and fit only
this layer — no labels — by minimising the dual (H⁻¹) norm of the vorticity-equation
residual of the predicted trajectory:

    R = ∂_t ω + u·∇ω − νΔω − f,     loss = ‖R‖_{L²(0,T; H⁻¹)}  (exact via Parseval).

The time derivative comes from one Crank–Nicolson step of `physim.spectral` between
consecutive output frames (`physim.spectral.cn_residual_hat`); since SFNO's output is a
trigonometric series in time, the output can be sampled `time_refine` times more densely
than the data frames, so that step is short. The first frame of that sequence is the
true last input frame, which ties the trajectory to its known initial condition.

The same residual norm, evaluated on the frozen model's prediction, is a label-free
a-posteriori error indicator (`SpectralRefiner.estimate`).

The optimiser is Adam with a cosine decay of the learning rate to zero over a few hundred
iterations: the error keeps falling long after the residual levels off, and a constant rate
leaves Adam oscillating (docs/spectral.md has the measurements).

Per-sample layers are optimised together in one batch (each sample owns its widened
layer; Adam is elementwise, so this is the same as refining them one by one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from physim.operators.sfno import SFNO, helmholtz_project
from torch import nn

from physim.config import check_choice, check_int, check_positive
from physim.errors import ConfigError
from physim.spectral.grid import SpectralGrid
from physim.spectral.solver import cn_residual_hat

__all__ = ["RefineResult", "RefinerConfig", "SpectralRefiner"]


@dataclass(frozen=True, kw_only=True)
class RefinerConfig:
    """Settings of the refinement."""

    modes_x: int | None = None
    """Spatial modes of the widened layer per sign; None: n//3 (the 2/3-dealiasing limit of the grid)."""
    modes_y: int | None = None
    """As modes_x, for y."""
    modes_t: int | None = None
    """Time modes of the widened layer; None: twice the model's."""
    iterations: int = 300
    """Adam iterations. The H⁻¹ residual has slow directions (errors that are nearly steady
    under advection barely show in it): the error keeps falling for hundreds of iterations
    after the residual has levelled off, so 50-100 iterations stop far too early."""
    lr_weight: float = 3e-4
    """Peak Adam learning rate of the widened weights."""
    lr_bias: float = 3e-4
    """Peak Adam learning rate of the per-mode bias."""
    schedule: str = "cosine"
    """Learning-rate schedule over the iterations: 'cosine' (decay to 0; a constant rate leaves
    Adam oscillating at a residual set by the rate) or 'constant'."""
    alpha: float = 10 ** (-1.5)
    """α of the H⁻¹ weight (α + |k|²)^{-1}."""
    time_refine: int = 4
    """Output samples per data frame interval used for the Crank–Nicolson residual."""
    batch_size: int = 8
    """Samples refined together."""

    def __post_init__(self) -> None:
        for key in ("modes_x", "modes_y", "modes_t"):
            if getattr(self, key) is not None:
                check_int(key, getattr(self, key), 1)
        check_int("iterations", self.iterations, 0)
        check_positive("lr_weight", self.lr_weight)
        check_positive("lr_bias", self.lr_bias)
        check_choice("schedule", self.schedule, ("cosine", "constant"))
        check_positive("alpha", self.alpha)
        check_int("time_refine", self.time_refine, 1, 64)
        check_int("batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class RefineResult:
    """Outcome of `SpectralRefiner.refine`.

    Attributes:
        prediction: Refined trajectories, (batch, nx, ny, out_steps).
        initial_prediction: The frozen model's trajectories, same shape.
        residual_before, residual_after: ‖R‖_{L²(0,T;H⁻¹)} per sample, shape (batch,).
        history: Mean residual norm per iteration, length iterations + 1.
    """

    prediction: torch.Tensor
    initial_prediction: torch.Tensor
    residual_before: torch.Tensor
    residual_after: torch.Tensor
    history: list[float]


class _WideOutput(nn.Module):
    """Per-sample widened copy of SFNO's output layer (channels = 1 or 2)."""

    def __init__(self, layer, batch: int, modes: tuple[int, int, int]):
        super().__init__()
        old = layer.conv
        c = layer.channels
        mx, my, mt = modes
        ox, oy, ot = old.modes
        if mx < ox or my < oy or mt < ot:
            raise ConfigError("modes", modes, f"at least the trained modes {old.modes} (the layer is widened)")
        self.modes, self.channels, self.divergence_free = modes, c, layer.divergence_free
        self.bias_scale = old.bias_scale
        w = torch.zeros(batch, 4, c, c, mx, my, mt, 2, dtype=old.weight.dtype, device=old.weight.device)
        b = torch.zeros(batch, 4, c, mx, my, mt, 2, dtype=old.weight.dtype, device=old.weight.device)
        # Quadrant q stores frequencies 0…m−1 (positive) or −m…−1 (negative) per axis: copy the
        # trained modes to the same frequencies of the wider arrays.
        for q in range(4):
            sx = slice(0, ox) if q in (0, 2) else slice(mx - ox, mx)
            sy = slice(0, oy) if q in (0, 1) else slice(my - oy, my)
            w[:, q, :, :, sx, sy, :ot] = old.weight.detach()[q]
            b[:, q, :, sx, sy, :ot] = old.bias.detach()[q]
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b)

    def forward(self, latent, last, out_steps: int, time_refine: int) -> torch.Tensor:
        v = torch.cat([last, latent], dim=-1)
        pad = v.shape[-1]
        v = nn.functional.pad(v, (pad, 0))
        bsz, c, nx, ny, _ = v.shape
        n_window = out_steps + 1 + pad
        nt_out = (time_refine * n_window) // 2 + 1
        v_hat = torch.fft.rfftn(v, dim=(-3, -2, -1), norm="forward")
        mx, my, mt = self.modes
        mt = min(mt, v_hat.shape[-1], nt_out)
        w = torch.view_as_complex(self.weight[..., :mt, :].contiguous())
        bias = torch.view_as_complex(self.bias[..., :mt, :].contiguous())
        out = torch.zeros(bsz, c, nx, ny, nt_out, dtype=v_hat.dtype, device=v_hat.device)
        slices = [(slice(0, mx), slice(0, my)), (slice(nx - mx, nx), slice(0, my)),
                  (slice(0, mx), slice(ny - my, ny)), (slice(nx - mx, nx), slice(ny - my, ny))]
        for q, (sx, sy) in enumerate(slices):
            # Tiny channel counts (1 or 2): a broadcast product is cheaper than a matmul here.
            block = (v_hat[:, :, None, sx, sy, :mt] * w[:, q]).sum(dim=1) + self.bias_scale * bias[:, q]
            out[:, :, sx, sy, :mt] = block
        if self.divergence_free:
            out = helmholtz_project(out)
        full = torch.fft.irfftn(out, s=(nx, ny, time_refine * n_window), dim=(-3, -2, -1), norm="forward")
        start = time_refine * (n_window - out_steps - 1)
        return last + full[..., start:start + time_refine * out_steps + 1]


class SpectralRefiner:
    """Refine a trained, frozen SFNO on the vorticity equation's H⁻¹ residual; no labels.

    Args:
        model: A trained scalar (vorticity) `SFNO`; it is not modified.
        viscosity: ν [m²/s] of the flow.
        frame_dt: Time between output frames [s].
        forcing: f [1/s²] on the evaluation grid, shape (n, n); None for unforced flows.
            Evaluated at other resolutions by spectral interpolation.
        length: Side of the periodic domain [m].
        cfg: Settings.

    Example::

        ref = SpectralRefiner(model, viscosity=1e-3, frame_dt=0.2, forcing=f64)
        est = ref.estimate(x)                    # a-posteriori indicator of each prediction
        out = ref.refine(x, out_steps=40)        # out.prediction: refined trajectories
    """

    def __init__(self, model: SFNO, *, viscosity: float, frame_dt: float, forcing: torch.Tensor | None = None,
                 length: float = 1.0, cfg: RefinerConfig | None = None):
        if not isinstance(model, SFNO) or model.channels != 1:
            raise ConfigError("model", type(model).__name__, "a scalar (vorticity) SFNO with channels=1")
        check_positive("frame_dt", frame_dt)
        check_positive("length", length)
        if viscosity < 0 or not math.isfinite(viscosity):
            raise ConfigError("viscosity", viscosity, "a finite value >= 0")
        self.model, self.viscosity, self.frame_dt, self.length = model, float(viscosity), float(frame_dt), length
        self.forcing = forcing
        self.cfg = cfg if cfg is not None else RefinerConfig()

    # -- pieces ----------------------------------------------------------------------------------
    def _grid_and_forcing(self, n: int, like: torch.Tensor):
        grid = SpectralGrid.build(n, self.length, dtype=like.dtype, device=like.device)
        if self.forcing is None:
            return grid, None
        f = self.forcing.to(like)
        if f.shape[-1] != n:  # spectral interpolation of the forcing to this grid
            src = SpectralGrid.build(f.shape[-1], self.length, dtype=like.dtype, device=like.device)
            f_hat = src.to_spectral(f)
            out = torch.zeros(n, n // 2 + 1, dtype=f_hat.dtype, device=f.device)
            m = min(f.shape[-1], n) // 2
            out[:m, :m] = f_hat[:m, :m]
            out[-m:, :m] = f_hat[-m:, :m]
            f = grid.to_physical(out)
        return grid, f

    def residual_norm(self, trajectory: torch.Tensor, dt: float) -> torch.Tensor:
        """‖R‖_{L²(0,T;H⁻¹)} per sample of frames (batch, nx, ny, T+1) spaced `dt` [s] (first = initial)."""
        grid, f = self._grid_and_forcing(trajectory.shape[1], trajectory)
        r_hat = cn_residual_hat(grid, trajectory.permute(0, 3, 1, 2), f, self.viscosity, dt)
        return grid.norm_sq(r_hat, s=-1.0, alpha=self.cfg.alpha).mean(dim=1).sqrt()

    def _check_x(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != x.shape[2]:
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)}",
                              "(batch, n, n, t_in) on the periodic square (the residual needs a square grid)")
        if x.shape[1] % 2:
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)}", "an even resolution n (FFT layout)")

    @torch.no_grad()
    def estimate(self, x: torch.Tensor, out_steps: int | None = None) -> torch.Tensor:
        """A-posteriori indicator: H⁻¹ residual norm of the frozen model's prediction per sample."""
        self._check_x(x)
        steps = out_steps or self.model.out_steps or x.shape[-1]
        r = self.cfg.time_refine
        fine = self.model.output(self.model.latent(x), x[:, None, ..., -1:], steps, time_refine=r)[:, 0]
        # time_refine 1 returns the S output frames only; r > 1 also the model's value at the last input time.
        seq = torch.cat([x[..., -1:], fine if r == 1 else fine[..., 1:]], dim=-1)
        return self.residual_norm(seq, self.frame_dt / r)

    def refine(self, x: torch.Tensor, out_steps: int | None = None, *, progress: bool = False) -> RefineResult:
        """Fine-tune per-sample widened output layers on the residual; returns the refined trajectories."""
        self._check_x(x)
        cfg = self.cfg
        steps = out_steps or self.model.out_steps or x.shape[-1]
        results = [self._refine_batch(x[i:i + cfg.batch_size], steps, progress)
                   for i in range(0, x.shape[0], cfg.batch_size)]
        hist = [sum(h[k] * len(p) for h, p in zip([r[4] for r in results], [r[0] for r in results])) / x.shape[0]
                for k in range(len(results[0][4]))]
        return RefineResult(*(torch.cat([r[j] for r in results]) for j in range(4)), history=hist)

    def _refine_batch(self, x: torch.Tensor, steps: int, progress: bool):
        cfg, model = self.cfg, self.model
        n = x.shape[1]
        modes = (cfg.modes_x or n // 3, cfg.modes_y or n // 3, cfg.modes_t or 2 * model.output.conv.modes[2])
        with torch.no_grad():
            latent = model.latent(x)  # cached: the frozen network runs once
            initial = model(x, out_steps=steps)
        last = x[:, None, ..., -1:]
        layer = _WideOutput(model.output, x.shape[0], modes)
        opt = torch.optim.Adam([{"params": [layer.weight], "lr": cfg.lr_weight},
                                {"params": [layer.bias], "lr": cfg.lr_bias}])
        if cfg.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / max(cfg.iterations, 1))))
        else:
            sched = None
        r, dt = cfg.time_refine, self.frame_dt / cfg.time_refine

        def residual():
            fine = layer(latent, last, steps, r)[:, 0]
            return self.residual_norm(torch.cat([x[..., -1:], fine[..., 1:]], dim=-1), dt)

        def closure():
            opt.zero_grad(set_to_none=True)
            res = residual()
            res.sum().backward()  # per-sample layers: the sum decouples the samples
            return res.sum()

        history = []
        from tqdm.auto import tqdm

        with torch.no_grad():
            before = residual()
        for _ in tqdm(range(cfg.iterations), desc="refine", disable=not progress, leave=False):
            history.append(float(opt.step(closure).detach()) / x.shape[0])
            if sched is not None:
                sched.step()
        with torch.no_grad():
            after = residual()
            history.append(float(after.mean()))
            fine = layer(latent, last, steps, r)[:, 0]
            pred = fine[..., r::r]  # back on the data frames t_1 … t_S
        return pred, initial, before, after, history
