"""GIOROM's latent grid and its transformer (GNOT-style linear attention with gated experts).

The sparse particle features are integrated onto a regular grid of ``resolution^dim``
points that spans a frame attached to the scene (the domain box, or the particle cloud's
bounding cube), processed there by a few transformer blocks, and integrated back. The
frame moves with the scene, so the whole operator stays translation-equivariant.

Attention is the normalised linear attention of GNOT (Hao et al., ICML 2023):
``softmax_features(Q) · (softmax_tokens(K)ᵀ V)``, linear in the number of tokens; the
feed-forward part is a mixture of experts whose gate depends on the token's grid
position (GNOT's geometric gating).
"""

from __future__ import annotations

import torch
from torch import nn

from ..lagrangian.nn import mlp

__all__ = ["LatentTransformer", "unit_grid"]


def unit_grid(resolution: int, dim: int, *, device=None, dtype=None) -> torch.Tensor:
    """Grid points of [−1, 1]^dim, shape (resolution^dim, dim), the last axis varying fastest."""
    axis = torch.linspace(-1.0, 1.0, resolution, device=device, dtype=dtype)
    return torch.cartesian_prod(*([axis] * dim)).reshape(-1, dim) if dim > 1 else axis[:, None]


class _LinearAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} is invalid: expected a multiple of heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q = q.softmax(dim=-1)
        k = k.softmax(dim=-2)  # over tokens: each feature of k is a distribution over the grid
        ctx = k.transpose(-2, -1) @ v  # (b, heads, dh, dh)
        y = (q @ ctx).transpose(1, 2).reshape(b, t, w)
        return self.out(y)


class _GatedExperts(nn.Module):
    def __init__(self, width: int, experts: int, dim: int):
        super().__init__()
        self.experts = nn.ModuleList(mlp(width, 2 * width, width, layers=1, layer_norm=False, activation=nn.GELU)
                                     for _ in range(experts))
        self.gate = mlp(dim, width, experts, layers=1, layer_norm=False, activation=nn.GELU)

    def forward(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        g = self.gate(coords).softmax(dim=-1)  # (tokens, experts)
        return sum(g[:, i:i + 1] * expert(x) for i, expert in enumerate(self.experts))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, experts: int, dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = _LinearAttention(width, heads)
        self.ffn = _GatedExperts(width, experts, dim)

    def forward(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x), coords)


class LatentTransformer(nn.Module):
    """Transformer over the latent grid tokens of each scene.

    Args:
        width: Token width.
        dim: Spatial dimension (for the positional embedding and the expert gate).
        layers: Transformer blocks.
        heads: Attention heads.
        experts: Feed-forward experts per block.
    """

    def __init__(self, width: int, dim: int, *, layers: int = 2, heads: int = 4, experts: int = 3):
        super().__init__()
        self.position = mlp(dim, width, width, layers=1, layer_norm=False, activation=nn.GELU)
        self.blocks = nn.ModuleList(_Block(width, heads, experts, dim) for _ in range(layers))

    def forward(self, tokens: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Args: tokens (scenes, grid_points, width); grid coordinates in [−1, 1]^dim, shape (grid_points, dim)."""
        x = tokens + self.position(coords)
        for block in self.blocks:
            x = block(x, coords)
        return x

