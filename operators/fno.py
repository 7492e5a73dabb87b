"""FNO3d baseline: the `neuraloperator` library's FNO over (x, y, t), as in Li et al. (2021).

The baseline of the SFNO benchmark is a peer's own implementation, not a re-typed one:
neuraloperator 2.0 (MIT) installs with physim's torch/numpy pins (``pip install
physim-diff[baselines]``, part of the dev extra) and is imported lazily.

The FNO3d task set-up follows the original paper: the `in_steps` input frames become
channels, repeated along an output time axis of `out_steps` samples; the network adds
(x, y, t) grid channels ("grid" embedding), pads the non-periodic time axis, and maps to
one output channel. Inputs and outputs are normalised by a dataset mean and standard
deviation stored in the model (`set_normalizer`), the role of the original
UnitGaussianNormalizer.

Shapes: (batch, nx, ny, in_steps) → (batch, nx, ny, out_steps). Unlike SFNO, the number
of output steps is fixed by construction.
"""

from __future__ import annotations

import torch
from physim.operators.base import OperatorBase

from physim.config import check_int, check_range
from physim.errors import ConfigError

__all__ = ["FNO3d"]


def _neuralop_fno():
    try:
        from neuralop.models import FNO
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ImportError("physim.operators.fno.FNO3d needs the neuraloperator package: "
                          "pip install 'physim-diff[baselines]'") from exc
    return FNO


class FNO3d(OperatorBase, name="fno3d"):
    """neuraloperator's FNO on (x, y, t) with the FNO3d input layout.

    Args:
        modes_x, modes_y, modes_t: Modes kept per axis (x and y per sign; t of the real FFT),
            the same meaning as SFNO's, so equal arguments give equal spectral weights.
        width: Hidden channels.
        n_layers: Fourier layers.
        in_steps, out_steps: Input frames and output frames.
        time_padding: Fraction of the time axis zero-padded (the original pads 6 of 40).
    """

    def __init__(self, *, modes_x: int = 12, modes_y: int = 12, modes_t: int = 5, width: int = 20, n_layers: int = 4,
                 in_steps: int = 10, out_steps: int = 40, time_padding: float = 0.15):
        super().__init__()
        for name, v in (("modes_x", modes_x), ("modes_y", modes_y), ("modes_t", modes_t), ("width", width),
                        ("n_layers", n_layers), ("in_steps", in_steps), ("out_steps", out_steps)):
            check_int(name, v, 1)
        check_range("time_padding", time_padding, 0.0, 1.0)
        self.modes = (modes_x, modes_y, modes_t)
        self.in_steps, self.out_steps = in_steps, out_steps
        fno = _neuralop_fno()
        # neuraloperator counts all modes of a full axis (both signs) and halves the last (rfft) axis.
        self.net = fno(n_modes=(2 * modes_x, 2 * modes_y, 2 * (modes_t - 1)), in_channels=in_steps, out_channels=1,
                       hidden_channels=width, n_layers=n_layers, positional_embedding="grid",
                       domain_padding=[0.0, 0.0, time_padding] if time_padding > 0 else None)
        self.register_buffer("norm_stats", torch.tensor([0.0, 1.0]))

    def state_dict(self, *args, **kwargs):
        """Tensors only: neuraloperator's BaseModel adds a ``_metadata`` dict (with functions) to the
        state dict, which physim's weights-only files cannot hold; physim's metadata replaces it."""
        sd = super().state_dict(*args, **kwargs)
        sd.pop("_metadata", None)
        return sd

    def set_normalizer(self, data: torch.Tensor) -> None:
        """Store the mean and standard deviation of training fields (any shape) for (de)normalising."""
        self.norm_stats = torch.stack([data.mean(), data.std()]).to(self.norm_stats)

    def forward(self, x: torch.Tensor, out_steps: int | None = None) -> torch.Tensor:
        """(batch, nx, ny, in_steps) -> (batch, nx, ny, out_steps)."""
        if out_steps not in (None, self.out_steps):
            raise ConfigError("out_steps", out_steps, f"{self.out_steps}: FNO3d's output length is fixed")
        if x.dim() != 4 or x.shape[-1] != self.in_steps:
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)}", f"(batch, nx, ny, {self.in_steps})")
        nx, ny = x.shape[1:3]
        if nx < 2 * self.modes[0] or ny < 2 * self.modes[1]:
            raise ConfigError("x", f"tensor of shape {tuple(x.shape)}",
                              f"a spatial grid of at least ({2 * self.modes[0]}, {2 * self.modes[1]}) points")
        mean, std = self.norm_stats[0], self.norm_stats[1]
        v = ((x - mean) / std).permute(0, 3, 1, 2)[..., None].expand(-1, -1, -1, -1, self.out_steps)
        return self.net(v.contiguous())[:, 0] * std + mean
