"""GNS: the Graph Network-based Simulator baseline (Sanchez-Gonzalez et al., ICML 2020).

Encode–process–decode on the full particle graph: node inputs are the last
``history − 1`` normalised velocities, clipped wall distances and a particle-type
embedding; edge inputs are the relative displacement over the connectivity radius and
its length; `layers` residual interaction-network blocks with unshared weights sum
messages; an MLP decodes a normalised acceleration, integrated with semi-implicit Euler.
Training adds random-walk noise to the input history (see `LagrangianModel.one_step_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

from physim.config import check_int

from ..lagrangian.features import edge_features
from ..lagrangian.layers import InteractionNetwork
from ..lagrangian.model import LagrangianModel
from ..lagrangian.nn import mlp

__all__ = ["GNS"]


class GNS(LagrangianModel, name="gns"):
    """Graph Network-based Simulator on the dense particle graph.

    Args:
        dim: Spatial dimension.
        history: Input frames (6 in GNS: five velocities).
        radius: Connectivity radius [m].
        bounds: Domain box [m] ``[[lo...], [hi...]]`` for wall-distance features, or None.
        num_types: Particle types (materials) embedded; 1 disables the embedding.
        type_dim: Width of the type embedding (16 in GNS).
        noise_std: Standard deviation [m] of the training noise on the last input position.
        hidden: Latent width (128 in GNS).
        layers: Message-passing steps (10 in GNS).
        mlp_layers: Hidden layers per MLP (2 in GNS).
        max_num_neighbors: Keep only the nearest this many neighbours (None: all within `radius`).
    """

    def __init__(self, *, dim: int = 2, history: int = 6, radius: float = 0.03, bounds=None, num_types: int = 5,
                 type_dim: int = 16, noise_std: float = 3e-4, hidden: int = 128, layers: int = 10,
                 mlp_layers: int = 2, max_num_neighbors: int | None = None):
        super().__init__()
        self._init_common(dim=dim, history=history, radius=radius, bounds=bounds, num_types=num_types,
                          type_dim=type_dim, noise_std=noise_std)
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 1)
        check_int("mlp_layers", mlp_layers, 1)
        if max_num_neighbors is not None:
            check_int("max_num_neighbors", max_num_neighbors, 1)
        self.max_num_neighbors = max_num_neighbors
        self.node_encoder = mlp(self.node_in, hidden, hidden, layers=mlp_layers)
        self.edge_encoder = mlp(dim + 1, hidden, hidden, layers=mlp_layers)
        self.processor = nn.ModuleList(InteractionNetwork(hidden, mlp_layers=mlp_layers, aggr="add")
                                       for _ in range(layers))
        self.decoder = mlp(hidden, hidden, dim, layers=mlp_layers, layer_norm=False)

    def graph(self, x: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Edges (2, edge_count) between particles within `radius` of each other (no self-loops)."""
        from physim.neighbors import neighbor_graph

        return neighbor_graph(x.detach(), radius=self.radius, batch=batch, max_num_neighbors=self.max_num_neighbors)

    def predict(self, history, particle_type, batch=None, bounds=None):
        self._check_history(history, particle_type)
        x = history[:, -1]
        edge_index = self.graph(x, batch)
        h = self.node_encoder(self._features(history, particle_type, self._bounds(bounds, x), self.radius))
        e = self.edge_encoder(edge_features(x, edge_index, self.radius))
        for block in self.processor:
            h, e = block(h, e, edge_index)
        return self.decoder(h)
