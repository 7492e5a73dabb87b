"""Small network building blocks shared by the particle models."""

from __future__ import annotations

from torch import nn

__all__ = ["mlp"]


def mlp(in_dim: int, hidden: int, out_dim: int, *, layers: int = 2, layer_norm: bool = True,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``layers`` hidden layers of width `hidden` with `activation`, a linear output, and an
    optional LayerNorm on the output (GNS's encoder/processor MLPs; the decoder has none)."""
    mods: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), activation()]
        width = hidden
    mods.append(nn.Linear(width, out_dim))
    if layer_norm:
        mods.append(nn.LayerNorm(out_dim))
    return nn.Sequential(*mods)
