"""Graph-neural-operator (kernel-integral) layers between point sets.

``(K f)(x) = (1/|B(x)|) Σ_{y ∈ B(x, R)} k(x − y, f(y))``: a Monte-Carlo quadrature of
``∫_{B(x,R)} k(x, y, f(y)) dy`` with uniform weights over the points y within radius R of x
(GINO, Li et al. 2023). The kernel sees the *relative* position ``(x − y)/R``: GIOROM's
public code overwrites the query coordinate and so sees only y (ANCHORS §2.1); physim uses
``k(x − y, f(y))``, which also makes the layer translation-equivariant.

- ``"nonlinear"`` kernel: ``k = MLP([(x − y)/R, f(y)])`` (GIOROM's encoder onto the latent grid).
- ``"linear"`` kernel: ``k = MLP((x − y)/R) ⊙ W f(y)`` (GIOROM's decoder off the latent grid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from physim.config import check_choice

from ..lagrangian.nn import mlp

__all__ = ["KERNELS", "KernelIntegral", "scatter_mean"]

KERNELS = ("nonlinear", "linear")


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of `values` rows grouped by `index` into `size` rows (zero where a group is empty)."""
    out = values.new_zeros((size, *values.shape[1:])).index_add_(0, index, values)
    count = torch.bincount(index, minlength=size).clamp(min=1).to(values.dtype)
    return out / count.view(-1, *([1] * (values.dim() - 1)))


class KernelIntegral(nn.Module):
    """Kernel-integral layer from source points (with features) to destination points.

    Args:
        dim: Spatial dimension.
        in_channels: Features per source point.
        out_channels: Features per destination point.
        hidden: Width of the kernel MLP.
        kernel: ``"nonlinear"`` or ``"linear"``.
        mlp_layers: Hidden layers of the kernel MLP.
    """

    def __init__(self, dim: int, in_channels: int, out_channels: int, *, hidden: int = 64,
                 kernel: str = "nonlinear", mlp_layers: int = 2):
        super().__init__()
        check_choice("kernel", kernel, KERNELS)
        self.kernel = kernel
        if kernel == "nonlinear":
            self.k = mlp(dim + in_channels, hidden, out_channels, layers=mlp_layers, layer_norm=False,
                         activation=nn.GELU)
        else:
            self.k = mlp(dim, hidden, out_channels, layers=mlp_layers, layer_norm=False, activation=nn.GELU)
            self.w = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, f_src: torch.Tensor, pos_src: torch.Tensor, pos_dst: torch.Tensor, edge_index: torch.Tensor,
                radius: float) -> torch.Tensor:
        """Args: source features (n_src, in), source and destination positions (n, dim) in the
        same coordinates as `radius`, edges (2, E) from source (row 0) to destination (row 1).

        Returns: destination features (n_dst, out); zero where no source lies within the radius.
        """
        src, dst = edge_index
        rel = (pos_dst[dst] - pos_src[src]) / radius
        if self.kernel == "nonlinear":
            # First layer of MLP([rel, f]) split: the feature block is applied once per source point.
            first = self.k[0]
            w_rel, w_f = first.weight.split([rel.shape[1], f_src.shape[1]], dim=1)
            msg = self.k[1:](F.linear(rel, w_rel, first.bias) + F.linear(f_src, w_f)[src])
        else:
            msg = self.k(rel) * self.w(f_src)[src]
        return scatter_mean(msg, dst, pos_dst.shape[0])
