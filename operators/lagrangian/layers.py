"""Message-passing layers on particle graphs (torch-geometric `MessagePassing`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nn import mlp

__all__ = ["InteractionNetwork"]


_PASS_CLASS = None


def _pass_class():
    """A torch-geometric `MessagePassing` whose messages are precomputed per edge (built once, lazily:
    importing torch-geometric is slow and `import physim.operators` must stay cheap)."""
    global _PASS_CLASS
    if _PASS_CLASS is None:
        from torch_geometric.nn import MessagePassing

        class EdgeMessagePassing(MessagePassing):
            # torch-geometric generates `propagate` from this declaration of its keyword arguments.
            propagate_type = {"m": torch.Tensor}  # noqa: RUF012

            def message(self, m: torch.Tensor) -> torch.Tensor:
                return m

        _PASS_CLASS = EdgeMessagePassing
    return _PASS_CLASS


class InteractionNetwork(nn.Module):
    """One residual interaction-network block (Battaglia et al. 2016; GNS's processor step).

    Edge update ``m_ij = MLP([e_ij, h_i, h_j])``, node update ``h_i += MLP([h_i, ⊕_j w_ij m_ij])``,
    ``e_ij += m_ij``. GNS sums messages with ``w_ij = 1``; GIOROM's graph-interaction layers
    average them with ``w_ij = 1 / (1 + |x_i − x_j| / r)``.

    Args:
        hidden: Width of node and edge latents.
        mlp_layers: Hidden layers of each MLP.
        aggr: ``"add"`` or ``"mean"``.
    """

    def __init__(self, hidden: int, *, mlp_layers: int = 2, aggr: str = "add"):
        super().__init__()
        self.edge_mlp = mlp(3 * hidden, hidden, hidden, layers=mlp_layers)
        self.node_mlp = mlp(2 * hidden, hidden, hidden, layers=mlp_layers)
        self.aggregate = _Aggregate(aggr)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor,
                weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: node latents (nodes, hidden), edge latents (edges, hidden), edges (2, edges) with
        row 0 the sender j and row 1 the receiver i, optional message weights (edges, 1)."""
        src, dst = edge_index
        # The first layer of MLP([e, h_i, h_j]) split by input block: the node blocks are multiplied
        # once per node and gathered, not once per edge (same function, ~40% fewer edge FLOPs).
        first = self.edge_mlp[0]
        w_e, w_i, w_j = first.weight.split(h.shape[1], dim=1)
        z = F.linear(e, w_e, first.bias) + F.linear(h, w_i)[dst] + F.linear(h, w_j)[src]
        m = self.edge_mlp[1:](z)
        agg = self.aggregate(m if weight is None else m * weight, edge_index, h.shape[0])
        return h + self.node_mlp(torch.cat([h, agg], dim=1)), e + m


class _Aggregate(nn.Module):
    """Scatter messages to their receivers with torch-geometric's aggregation (add or mean)."""

    def __init__(self, aggr: str):
        super().__init__()
        self.passer = _pass_class()(aggr=aggr)

    def forward(self, m: torch.Tensor, edge_index: torch.Tensor, node_count: int) -> torch.Tensor:
        return self.passer.propagate(edge_index, m=m, size=(node_count, node_count))
