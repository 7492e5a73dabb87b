"""Resolution-aware losses for operators on periodic 2D fields: relative Lp, H¹ and H⁻¹.

All functions take ``pred`` and ``target`` of the same shape with two spatial axes
(`spatial_dims`, default the last two) on a uniform periodic grid of side `length`; every
other axis except the first (batch) — time, channels — is averaged, so a space-time
tensor gives the Bochner norm L²(0, T; X). Norms are integrals, not sums: the Lp norm
carries the cell area, and the Sobolev norms are evaluated exactly in Fourier space
through Parseval with amplitudes independent of the resolution, so the same function
sampled at 64² and at 256² has (nearly) the same norm.

Sobolev weights follow Spectral-Refiner's ``SobolevLoss``: ‖f‖²_{H^s} = Σ_k (α + 4π²|k|²/L²)^s |f̂_k|²·L².
The H⁻¹ norm (s = −1) is the dual norm in which the residual of the vorticity equation is an
a-posteriori error estimate.

Example (SFNO layout (batch, x, y, t))::

    loss = relative_lp(pred, y, spatial_dims=(1, 2))            # training loss
    res_norm = sobolev_norm(residual, s=-1, alpha=10**-1.5)     # label-free fine-tuning loss
"""

from __future__ import annotations

import math

import torch

from physim.config import check_positive
from physim.errors import ConfigError

__all__ = ["h1_loss", "hminus1_loss", "relative_lp", "sobolev_loss", "sobolev_norm"]


def _check_pair(pred: torch.Tensor, target: torch.Tensor | None, spatial_dims) -> None:
    if target is not None and pred.shape != target.shape:
        raise ConfigError("pred", f"tensor of shape {tuple(pred.shape)}",
                          f"the shape of target {tuple(target.shape)}")
    if pred.dim() < 3:
        raise ConfigError("pred", f"tensor of shape {tuple(pred.shape)}", "(batch, ..., H, W) with at least 3 axes")
    dims = [d % pred.dim() for d in spatial_dims]
    if len(dims) != 2 or len(set(dims)) != 2 or 0 in dims:
        raise ConfigError("spatial_dims", spatial_dims, "two distinct non-batch axes")


def _to_last(x: torch.Tensor, spatial_dims) -> torch.Tensor:
    return x.movedim(tuple(spatial_dims), (-2, -1))


def _per_sample_sq(x: torch.Tensor, s: float, alpha: float, length: float, freq_cutoff: int | None) -> torch.Tensor:
    """∫ |(α−Δ)^{s/2} x|² per sample, averaged over non-spatial axes; x has space last."""
    h, w = x.shape[-2:]
    xh = torch.fft.rfft2(x, norm="forward")
    kx = torch.fft.fftfreq(h, d=1.0 / h, device=x.device, dtype=torch.float64)
    ky = torch.fft.rfftfreq(w, d=1.0 / w, device=x.device, dtype=torch.float64)
    kx, ky = torch.meshgrid(kx, ky, indexing="ij")
    mult = torch.full_like(kx, 2.0)
    mult[:, 0] = 1.0
    if w % 2 == 0:
        mult[:, -1] = 1.0
    if s != 0:
        mult = mult * (alpha + (2 * math.pi / length) ** 2 * (kx**2 + ky**2)) ** s
    if freq_cutoff is not None:
        mult = mult * ((kx.abs() < freq_cutoff) & (ky.abs() < freq_cutoff))
    sq = (mult.to(x.dtype) * xh.real**2 + mult.to(x.dtype) * xh.imag**2).sum(dim=(-2, -1)) * length**2
    return sq.reshape(sq.shape[0], -1).mean(dim=1)


def sobolev_norm(x: torch.Tensor, *, s: float = -1.0, alpha: float = 1.0, length: float = 1.0,
                 spatial_dims: tuple[int, int] = (-2, -1), freq_cutoff: int | None = None,
                 reduction: str = "mean") -> torch.Tensor:
    """‖x‖ in L²(0,T; H^s) per sample (exact via Parseval), reduced over the batch.

    Args:
        x: (batch, ..., H, W) on a periodic grid of side `length` [m].
        s: Sobolev order; 0 is L², 1 is H¹, −1 is H⁻¹.
        alpha: α > 0 in the weight (α + |k|²)^s.
        freq_cutoff: Keep only modes with |k_x|, |k_y| below this integer wavenumber.
        reduction: 'mean', 'sum' or 'none' over the batch.
    """
    _check_pair(x, None, spatial_dims)
    check_positive("alpha", alpha)
    norms = _per_sample_sq(_to_last(x, spatial_dims), s, alpha, length, freq_cutoff).clamp_min(0).sqrt()
    return _reduce(norms, reduction)


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    if reduction == "none":
        return v
    raise ConfigError("reduction", reduction, "one of 'mean', 'sum', 'none'")


def sobolev_loss(pred: torch.Tensor, target: torch.Tensor, *, s: float = 0.0, alpha: float = 1.0,
                 relative: bool = True, length: float = 1.0, spatial_dims: tuple[int, int] = (-2, -1),
                 freq_cutoff: int | None = None, reduction: str = "mean", eps: float = 1e-12) -> torch.Tensor:
    """‖pred − target‖_{L²(0,T;H^s)} (divided by ‖target‖ when `relative`), averaged over the batch."""
    _check_pair(pred, target, spatial_dims)
    check_positive("alpha", alpha)
    p, t = _to_last(pred, spatial_dims), _to_last(target, spatial_dims)
    err = _per_sample_sq(p - t, s, alpha, length, freq_cutoff).clamp_min(0).sqrt()
    if relative:
        err = err / (_per_sample_sq(t, s, alpha, length, freq_cutoff).clamp_min(0).sqrt() + eps)
    return _reduce(err, reduction)


def h1_loss(pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    """Relative (default) H¹ error: `sobolev_loss` with s = 1, α = 1."""
    return sobolev_loss(pred, target, s=1.0, **{"alpha": 1.0, **kwargs})


def hminus1_loss(pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    """H⁻¹ error: `sobolev_loss` with s = −1 (α default 10^{−1.5}, as Spectral-Refiner)."""
    return sobolev_loss(pred, target, s=-1.0, **{"alpha": 10 ** (-1.5), **kwargs})


def relative_lp(pred: torch.Tensor, target: torch.Tensor, *, p: float = 2.0, relative: bool = True,
                length: float = 1.0, spatial_dims: tuple[int, int] = (-2, -1), reduction: str = "mean",
                eps: float = 1e-12) -> torch.Tensor:
    """(∫|pred − target|^p)^{1/p} / (∫|target|^p)^{1/p} per sample over all non-batch axes (time
    averaged), with the cell area (L/H)(L/W) as quadrature weight, reduced over the batch."""
    _check_pair(pred, target, spatial_dims)
    check_positive("p", p)
    p_, t_ = _to_last(pred, spatial_dims), _to_last(target, spatial_dims)
    h, w = p_.shape[-2:]
    area = length * length / (h * w)

    def integral(x):
        v = (x.abs() ** p).sum(dim=(-2, -1)) * area
        return v.reshape(v.shape[0], -1).mean(dim=1) ** (1.0 / p)

    err = integral(p_ - t_)
    if relative:
        err = err / (integral(t_) + eps)
    return _reduce(err, reduction)
