"""SFNO: the spatiotemporal Fourier neural operator of Spectral-Refiner (Cao et al., ICLR 2025).

Maps a trajectory segment ω(x, y, t), t ∈ input window, to the following one — a map
between Bochner spaces L²(0, T; L²) — for any spatial resolution and any number of
output steps. physim's implementation of the published architecture (written from the
paper and the authors' description; see docs/spectral.md):

1. Lift: input + space-time positional encoding (x, y, t and exp(βt)·sin/cos(πkt)
   channels) → LayerNorm over (channels, x, y, t) — instead of a dataset-wide normaliser,
   so any input length works → 1×1×1 conv → a spectral conv that resamples the input's
   time axis to `latent_steps` through the inverse FFT → pointwise FFN, plus the last
   input frame as a skip.
2. `n_layers − 1` Fourier layers v ← σ(FFN(K v) + W v), K spectral over (x, y, t).
3. 1×1×1 conv to one channel per output field.
4. Output layer (`OutputSpectralConv`): prepend the last input frame, zero-pad the time
   window (no periodic wrap-around), an affine spectral conv with a per-mode bias, inverse
   FFT to the requested number of output steps, plus the last input frame as residual;
   for 2-channel velocity outputs an optional Helmholtz projection makes them
   divergence-free.

Shapes: scalar fields (batch, nx, ny, t_in) → (batch, nx, ny, t_out); vector fields
(batch, 2, nx, ny, t_in) → (batch, 2, nx, ny, t_out).
"""

from __future__ import annotations

import math

import torch
from physim.operators.base import OperatorBase
from physim.operators.spectral_layers import SpectralConv3d
from torch import nn

from physim.config import check_choice, check_int
from physim.errors import ConfigError

__all__ = ["SFNO", "OutputSpectralConv", "helmholtz_project"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def helmholtz_project(u_hat: torch.Tensor) -> torch.Tensor:
    """Remove the gradient part of velocity coefficients (b, 2, nx, ny, nt_hat): û − k(k·û)/|k|².

    Works on the rfftn layout over (x, y, t); the result's spectral divergence is zero.
    """
    nx, ny = u_hat.shape[-3], u_hat.shape[-2]
    opts = {"device": u_hat.device, "dtype": u_hat.real.dtype}
    kx = torch.fft.fftfreq(nx, d=1.0 / nx, **opts)[:, None, None]
    ky = torch.fft.fftfreq(ny, d=1.0 / ny, **opts)[None, :, None]
    k2 = kx**2 + ky**2
    inv = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
    div = kx * u_hat[:, 0] + ky * u_hat[:, 1]
    out = torch.stack([u_hat[:, 0] - kx * div * inv, u_hat[:, 1] - ky * div * inv], dim=1)
    # The derivative at a Nyquist frequency (k = n/2 of an even n) has no sign: drop those modes.
    keep = torch.ones(nx, ny, 1, **opts)
    if nx % 2 == 0:
        keep[nx // 2] = 0
    if ny % 2 == 0:
        keep[:, ny // 2] = 0
    return out * keep


class _FFN(nn.Sequential):
    def __init__(self, width: int, expansion: int, activation: str):
        super().__init__(nn.Conv3d(width, expansion * width, 1), ACTIVATIONS[activation](),
                         nn.Conv3d(expansion * width, width, 1))


class OutputSpectralConv(nn.Module):
    """SFNO's output layer: latent (b, C, x, y, L) + last input frame → (b, C, x, y, S).

    The layer is affine in its parameters; the refiner replaces it by a wider copy.

    Args:
        channels: Output fields (1: vorticity; 2: velocity).
        modes_x, modes_y, modes_t: Modes of the spectral conv.
        divergence_free: Helmholtz-project 2-channel outputs.
        bias_scale: Scale of the per-mode bias (a source term).
    """

    def __init__(self, channels: int, modes_x: int, modes_y: int, modes_t: int, *, divergence_free: bool = False,
                 bias_scale: float = 1.0):
        super().__init__()
        self.channels = channels
        self.divergence_free = divergence_free and channels == 2
        self.conv = SpectralConv3d(channels, channels, modes_x, modes_y, modes_t, bias=True, bias_scale=bias_scale,
                                   init_scale=1e-2)

    def forward(self, latent: torch.Tensor, last: torch.Tensor, out_steps: int, time_refine: int = 1) -> torch.Tensor:
        """Output trajectory.

        Args:
            latent: (b, C, x, y, L).
            last: Last input frame, (b, C, x, y, 1).
            out_steps: S output frames.
            time_refine: r ≥ 1: sample the same output function r times more densely in time
                and return r·S + 1 frames from the last input time to the last output time
                (the first is the model's value at the last input time).
        """
        nx, ny = latent.shape[-3], latent.shape[-2]
        if self.divergence_free:  # the residual frame must be projected too, or the sum is not div-free
            last_hat = helmholtz_project(torch.fft.rfftn(last, dim=(-3, -2, -1), norm="forward"))
            last = torch.fft.irfftn(last_hat, s=(nx, ny, 1), dim=(-3, -2, -1), norm="forward")
        v = torch.cat([last, latent], dim=-1)
        pad = v.shape[-1]
        v = nn.functional.pad(v, (pad, 0))  # zero history: the window is not periodic in time
        self.conv.check_resolution("latent", tuple(v.shape))
        n_window = out_steps + 1 + pad  # output window: `pad` history samples, t_0, t_1 … t_S
        v_hat = torch.fft.rfftn(v, dim=(-3, -2, -1), norm="forward")
        out_hat = self.conv.spectrum(v_hat, (time_refine * n_window) // 2 + 1)
        if self.divergence_free:
            out_hat = helmholtz_project(out_hat)
        out = torch.fft.irfftn(out_hat, s=(nx, ny, time_refine * n_window), dim=(-3, -2, -1), norm="forward")
        if time_refine == 1:
            return last + out[..., -out_steps:]
        start = time_refine * (n_window - out_steps - 1)
        return last + out[..., start:start + time_refine * out_steps + 1]


class SFNO(OperatorBase, name="sfno"):
    """Spatiotemporal Fourier neural operator (see the module docstring).

    Args:
        modes_x, modes_y, modes_t: Fourier modes kept per axis (x, y per sign).
        width: Latent channels.
        n_layers: Spectral layers, the lifting one included (≥ 2).
        latent_steps: Time samples of the latent trajectory.
        out_steps: Default number of output frames (None: as many as input frames).
        channels: 1 for a scalar field (vorticity), 2 for a vector field (velocity).
        divergence_free: Helmholtz-project velocity outputs (channels = 2 only).
        beta: Growth rate β of the exp(βt) time encoding.
        expansion: Channel expansion of the pointwise FFNs.
        activation: 'gelu', 'relu', 'silu' or 'tanh'.
    """

    def __init__(self, *, modes_x: int = 12, modes_y: int = 12, modes_t: int = 5, width: int = 20,
                 n_layers: int = 4, latent_steps: int = 10, out_steps: int | None = None, channels: int = 1,
                 divergence_free: bool = False, beta: float = -0.01, expansion: int = 4, activation: str = "gelu"):
        super().__init__()
        for name, v in (("modes_x", modes_x), ("modes_y", modes_y), ("modes_t", modes_t), ("latent_steps",
                        latent_steps), ("expansion", expansion)):
            check_int(name, v, 1)
        check_int("width", width, 4)
        check_int("n_layers", n_layers, 2)
        if out_steps is not None:
            check_int("out_steps", out_steps, 1)
        check_choice("channels", channels, (1, 2))
        check_choice("activation", activation, tuple(ACTIVATIONS))
        if divergence_free and channels != 2:
            raise ConfigError("divergence_free", divergence_free, "False unless channels=2 (velocity outputs)")
        self.width, self.channels, self.beta = width, channels, beta
        self.latent_steps, self.out_steps = latent_steps, out_steps
        self.n_pe = width - channels  # encoding channels: x, y, t and time harmonics
        if self.n_pe < 3:
            raise ConfigError("width", width, f"at least channels + 3 = {channels + 3}")
        self.norm = nn.GroupNorm(1, width, eps=1e-6)  # LayerNorm over (C, x, y, t): any input length
        self.lift = nn.Conv3d(width, width, 1)
        self.lift_conv = SpectralConv3d(width, width, modes_x, modes_y, modes_t)
        self.lift_ffn = _FFN(width, expansion, activation)
        self.convs = nn.ModuleList(SpectralConv3d(width, width, modes_x, modes_y, modes_t)
                                   for _ in range(n_layers - 1))
        self.ffns = nn.ModuleList(_FFN(width, expansion, activation) for _ in range(n_layers - 1))
        self.skips = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(n_layers - 1))
        self.act = ACTIVATIONS[activation]()
        self.reduce = nn.Conv3d(width, channels, 1)
        self.output = OutputSpectralConv(channels, modes_x, modes_y, modes_t, divergence_free=divergence_free)

    # -- pieces --------------------------------------------------------------------------------
    def _encoding(self, nx: int, ny: int, nt: int, like: torch.Tensor) -> torch.Tensor:
        opts = {"dtype": like.dtype, "device": like.device}
        x = torch.linspace(0, 1, nx + 1, **opts)[:-1]
        y = torch.linspace(0, 1, ny + 1, **opts)[:-1]
        t = torch.arange(1, nt + 1, **opts) / nt
        chans = [x[:, None, None].expand(nx, ny, nt), y[None, :, None].expand(nx, ny, nt),
                 t[None, None, :].expand(nx, ny, nt)]
        for k in range(self.n_pe - 3):
            basis = torch.sin if k % 2 == 0 else torch.cos
            harmonic = torch.exp(self.beta * t) * basis(math.pi * (k // 2 + 1) * t)
            chans.append(harmonic[None, None, :].expand(nx, ny, nt))
        return torch.stack(chans)[None]  # (1, n_pe, nx, ny, nt)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        expected = "(batch, nx, ny, t)" if self.channels == 1 else "(batch, 2, nx, ny, t)"
        if x.dim() != (4 if self.channels == 1 else 5) or (self.channels == 2 and x.shape[1] != 2):
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)}", expected)
        v = x[:, None] if self.channels == 1 else x
        self.lift_conv.check_resolution("x", tuple(v.shape))
        if not bool(torch.isfinite(x).all()):
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)} with NaN/inf values", "finite values")
        return v

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The latent trajectory entering the output layer, (b, channels, nx, ny, latent_steps)."""
        v = self._check_input(x)
        nx, ny, nt = v.shape[-3:]
        h = torch.cat([v, self._encoding(nx, ny, nt, v).expand(v.shape[0], -1, -1, -1, -1)], dim=1)
        h = self.lift(self.norm(h))
        h = self.act(h[..., -1:] + self.lift_ffn(self.lift_conv(h, self.latent_steps)))
        for conv, ffn, skip in zip(self.convs, self.ffns, self.skips):
            h = self.act(ffn(conv(h)) + skip(h))
        return self.reduce(h)

    def forward(self, x: torch.Tensor, out_steps: int | None = None) -> torch.Tensor:
        """Predict the next `out_steps` frames (default: ``self.out_steps`` or the input length)."""
        steps = out_steps or self.out_steps or x.shape[-1]
        check_int("out_steps", steps, 1)
        latent = self.latent(x)
        v = x[:, None] if self.channels == 1 else x
        out = self.output(latent, v[..., -1:], steps)
        return out[:, 0] if self.channels == 1 else out
