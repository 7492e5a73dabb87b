"""Space-time spectral convolutions over (x, y, t) shared by SFNO and its refiner.

Transforms use ``norm="forward"``: a coefficient is the amplitude of its Fourier mode, so
the same function sampled on finer grids — in space (zero-shot super-resolution) or in
time (a different number of output steps) — has the same coefficients, and the inverse
transform evaluated at another size *resamples* the same trigonometric function.
"""

from __future__ import annotations

import torch
from torch import nn

from physim.errors import ConfigError

__all__ = ["SpectralConv3d", "mode_matmul"]


class _ContiguousBmm(torch.autograd.Function):
    """``torch.bmm`` whose backward also multiplies contiguous operands.

    On CPU, bmm with a transposed (non-contiguous) operand — which autograd's own backward
    of bmm produces — takes a per-matrix fallback that is orders of magnitude slower.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = g.contiguous()
        ga = torch.bmm(g, b.transpose(1, 2).contiguous()) if ctx.needs_input_grad[0] else None
        gb = torch.bmm(a.transpose(1, 2).contiguous(), g) if ctx.needs_input_grad[1] else None
        return ga, gb


def mode_matmul(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-mode channel mixing ``out[b,o,m] = Σ_i v[b,i,m] w[i,o,m]`` for complex v, w.

    Written as one real batched matrix product over the modes with [Re; Im] blocks on
    contiguous operands: torch's complex einsum here runs a strided per-matrix fallback on CPU
    that is orders of magnitude slower.

    Args:
        v: (b, C_in, *modes) complex.
        w: (C_in, C_out, *modes) complex.
    """
    b, ci = v.shape[:2]
    co = w.shape[1]
    modes = v.shape[2:]
    m = 1
    for s in modes:
        m *= s
    # bmm on permuted (non-contiguous) operands takes a per-matrix fallback ~10⁴x slower on CPU.
    vm = torch.cat([v.real, v.imag], dim=1).reshape(b, 2 * ci, m).permute(2, 0, 1).contiguous()  # (m, b, 2ci)
    wr, wi = w.real.reshape(ci, co, m), w.imag.reshape(ci, co, m)
    wm = torch.cat([torch.cat([wr, wi], dim=1), torch.cat([-wi, wr], dim=1)], dim=0)
    wm = wm.permute(2, 0, 1).contiguous()  # (m, 2ci, 2co)
    out = _ContiguousBmm.apply(vm, wm).permute(1, 2, 0).reshape(b, 2 * co, *modes)
    return torch.complex(out[:, :co], out[:, co:])


class SpectralConv3d(nn.Module):
    """Linear map on the lowest Fourier modes of a (batch, C, nx, ny, nt) field.

    Keeps modes |k_x| < modes_x, |k_y| < modes_y (four quadrants with their own complex
    weights) and 0 ≤ k_t < modes_t of the real FFT in time, multiplies them by complex
    weights (in_channels × out_channels per mode), optionally adds a per-mode complex bias
    (a source term: the map is then affine), and transforms back to `out_steps` time samples
    over the same periodic window.

    Args:
        in_channels, out_channels: Channels C_in, C_out.
        modes_x, modes_y, modes_t: Modes kept per axis (x and y: per sign).
        bias: Add a learnable per-mode complex bias (scaled by `bias_scale`).
        init_scale: Scale of the uniform initial weights (default 1/(C_in·C_out)).
    """

    def __init__(self, in_channels: int, out_channels: int, modes_x: int, modes_y: int, modes_t: int, *,
                 bias: bool = False, bias_scale: float = 1.0, init_scale: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes = (modes_x, modes_y, modes_t)
        self.bias_scale = bias_scale
        scale = 1.0 / (in_channels * out_channels) if init_scale is None else init_scale
        self.weight = nn.Parameter(scale * torch.rand(4, in_channels, out_channels, modes_x, modes_y, modes_t, 2))
        self.bias = nn.Parameter(torch.zeros(4, out_channels, modes_x, modes_y, modes_t, 2)) if bias else None

    def check_resolution(self, name: str, shape: tuple[int, ...]) -> None:
        """Refuse a spatial grid too coarse for the kept modes (quadrants would overlap)."""
        nx, ny = shape[-3], shape[-2]
        mx, my, _ = self.modes
        if nx < 2 * mx or ny < 2 * my:
            raise ConfigError(name, f"tensor of shape {tuple(shape)}",
                              f"a spatial grid of at least ({2 * mx}, {2 * my}) points for modes ({mx}, {my}) "
                              "(the FFT layout cannot hold the kept modes on a coarser grid)")

    def spectrum(self, v_hat: torch.Tensor, nt_out_hat: int) -> torch.Tensor:
        """Apply the weights to rfftn coefficients (b, C_in, nx, ny, nt_hat) -> (b, C_out, nx, ny, nt_out_hat)."""
        b, _, nx, ny, nt_hat = v_hat.shape
        mx, my, mt = self.modes
        mt = min(mt, nt_hat, nt_out_hat)  # time modes beyond what either side holds are dropped
        out = torch.zeros(b, self.out_channels, nx, ny, nt_out_hat, dtype=v_hat.dtype, device=v_hat.device)
        w = torch.view_as_complex(self.weight[..., :mt, :].contiguous())
        bias = None if self.bias is None else torch.view_as_complex(self.bias[..., :mt, :].contiguous())
        slices = [(slice(0, mx), slice(0, my)), (slice(nx - mx, nx), slice(0, my)),
                  (slice(0, mx), slice(ny - my, ny)), (slice(nx - mx, nx), slice(ny - my, ny))]
        for q, (sx, sy) in enumerate(slices):
            block = mode_matmul(v_hat[:, :, sx, sy, :mt], w[q])
            if bias is not None:
                block = block + self.bias_scale * bias[q]
            out[:, :, sx, sy, :mt] = block
        return out

    def forward(self, v: torch.Tensor, out_steps: int | None = None) -> torch.Tensor:
        """(b, C_in, nx, ny, nt) -> (b, C_out, nx, ny, out_steps) (default out_steps = nt)."""
        self.check_resolution("v", tuple(v.shape))
        nx, ny, nt = v.shape[-3:]
        out_steps = nt if out_steps is None else out_steps
        v_hat = torch.fft.rfftn(v, dim=(-3, -2, -1), norm="forward")
        out_hat = self.spectrum(v_hat, out_steps // 2 + 1)
        return torch.fft.irfftn(out_hat, s=(nx, ny, out_steps), dim=(-3, -2, -1), norm="forward")
