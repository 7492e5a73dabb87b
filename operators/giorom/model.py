"""GIOROM: Graph Interaction Operator for Reduced-Order Modelling (Viswanath et al., arXiv 2407.03925).

A learned simulator that steps a *sparse* subset of the particles (1/8 to 1/32) and
evaluates the dense field anywhere with a discretisation-agnostic decoder. Reimplemented
from the paper (its code has no license); architecture after ANCHORS §2.1:

1. GNS-style inputs on the sparse graph (velocity history, wall distances, type embedding;
   edges: displacement/r and length), encoded by MLPs;
2. graph-interaction layers (interaction network, mean of distance-weighted messages
   ``m_ij / (1 + |x_i − x_j| / r)``, plus a simple spectral graph convolution, SSGConv);
3. a kernel-integral (GNO) layer onto a latent grid, a linear-attention transformer with
   gated experts on the grid, and a GNO layer back to the particles, added residually;
4. more graph-interaction layers and an MLP decoding a normalised acceleration;
5. semi-implicit Euler with a unit step (as GNS);
6. `KernelIntegralDecoder`: the displacement field of every dense particle (or any query
   point) from the sparse state.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError

from ..lagrangian.features import edge_features
from ..lagrangian.layers import InteractionNetwork
from ..lagrangian.model import LagrangianModel
from ..lagrangian.nn import mlp
from ..lagrangian.sampling import SAMPLING, sample_particles
from .decoder import DecoderPlan, KernelIntegralDecoder
from .kernel_integral import KernelIntegral
from .latent import LatentTransformer, unit_grid

__all__ = ["FRAMES", "GIOROM"]

FRAMES = ("domain", "cloud")


class _GraphInteraction(nn.Module):
    """GIOROM's graph-interaction layer: interaction network with distance-weighted mean
    messages, plus SSGConv (Zhu & Koniusz 2021) on the same graph."""

    def __init__(self, hidden: int, mlp_layers: int, ssg_alpha: float | None):
        super().__init__()
        self.interaction = InteractionNetwork(hidden, mlp_layers=mlp_layers, aggr="mean")
        self.ssg = None
        if ssg_alpha is not None:
            from torch_geometric.nn import SSGConv

            self.ssg = SSGConv(hidden, hidden, alpha=ssg_alpha, K=1)

    def forward(self, h, e, edge_index, weight):
        h_new, e_new = self.interaction(h, e, edge_index, weight)
        if self.ssg is not None:
            h_new = h_new + self.ssg(h, edge_index)
        return h_new, e_new


class GIOROM(LagrangianModel, name="giorom"):
    """Reduced-order neural operator on a sparse particle graph, with a dense decoder.

    Args:
        dim: Spatial dimension.
        history: Input frames (6: five velocities).
        radius: Connectivity radius of the *sparse* graph [m] (about the dense radius times
            ``sparsity ** (1/dim)``, to keep the neighbour count).
        sparsity: Dense particles per sparse particle when sampling (8, 16, 32, ...).
        bounds: Domain box [m] ``[[lo...], [hi...]]`` (wall features, latent frame, the
            decoder's training domain), or None.
        num_types: Particle types embedded; 1 disables the embedding.
        type_dim: Width of the type embedding.
        noise_std: Training-noise standard deviation [m] on the last input position.
        hidden: Latent width of the graph layers.
        mlp_layers: Hidden layers per MLP.
        pre_layers: Graph-interaction layers before the latent grid.
        post_layers: Graph-interaction layers after it.
        ssg_alpha: SSGConv teleport α in the graph-interaction layers (None: no SSGConv).
        latent_resolution: Latent grid points per axis.
        latent_frame: ``"domain"`` (the grid spans `bounds`) or ``"cloud"`` (the particles'
            bounding cube, padded); ``"domain"`` needs `bounds`.
        gno_radius: Kernel-integral radius in latent grid cells.
        gno_width: Width of the latent tokens and kernel MLPs.
        transformer_layers: Transformer blocks on the latent grid.
        heads: Attention heads.
        experts: Gated feed-forward experts per block.
        sampling: How the sparse particles are picked: ``"fps"`` or ``"random"``.
        decoder_hidden: Width of the decoder's latent.
        decoder_neighbors: Sparse points per decoded query.
        decoder_weight: Weight of the decoder loss (dense displacement MSE over radius²) in training.
    """

    def __init__(self, *, dim: int = 2, history: int = 6, radius: float = 0.06, sparsity: float = 8.0,
                 bounds=None, num_types: int = 5, type_dim: int = 16, noise_std: float = 3e-4, hidden: int = 128,
                 mlp_layers: int = 2, pre_layers: int = 2, post_layers: int = 2, ssg_alpha: float | None = 0.7,
                 latent_resolution: int = 16, latent_frame: str = "domain", gno_radius: float = 2.5,
                 gno_width: int = 64, transformer_layers: int = 2, heads: int = 4, experts: int = 3,
                 sampling: str = "fps", decoder_hidden: int = 64, decoder_neighbors: int = 8,
                 decoder_weight: float = 1.0):
        super().__init__()
        self._init_common(dim=dim, history=history, radius=radius, bounds=bounds, num_types=num_types,
                          type_dim=type_dim, noise_std=noise_std)
        check_range("sparsity", sparsity, 1.0)
        for name, v, lo in (("hidden", hidden, 1), ("mlp_layers", mlp_layers, 1), ("pre_layers", pre_layers, 0),
                            ("post_layers", post_layers, 0), ("latent_resolution", latent_resolution, 2),
                            ("gno_width", gno_width, 1), ("transformer_layers", transformer_layers, 0),
                            ("heads", heads, 1), ("experts", experts, 1), ("decoder_hidden", decoder_hidden, 1),
                            ("decoder_neighbors", decoder_neighbors, 1)):
            check_int(name, v, lo)
        if ssg_alpha is not None:
            check_range("ssg_alpha", ssg_alpha, 0.0, 1.0)
        check_choice("latent_frame", latent_frame, FRAMES)
        if latent_frame == "domain" and bounds is None:
            raise ConfigError("latent_frame", latent_frame, "'cloud' when bounds is None (the grid spans the domain)")
        check_positive("gno_radius", gno_radius)
        if gno_width % heads:
            raise ConfigError("gno_width", gno_width, f"a multiple of heads={heads}")
        check_choice("sampling", sampling, SAMPLING)
        check_range("decoder_weight", decoder_weight, 0.0)
        self.sparsity, self.sampling, self.decoder_weight = float(sparsity), sampling, float(decoder_weight)
        self.latent_resolution, self.latent_frame = latent_resolution, latent_frame
        self.gno_radius_unit = gno_radius * 2.0 / (latent_resolution - 1)  # in [−1, 1] frame units

        self.node_encoder = mlp(self.node_in, hidden, hidden, layers=mlp_layers)
        self.edge_encoder = mlp(dim + 1, hidden, hidden, layers=mlp_layers)
        self.pre = nn.ModuleList(_GraphInteraction(hidden, mlp_layers, ssg_alpha) for _ in range(pre_layers))
        self.gno_in = KernelIntegral(dim, hidden, gno_width, hidden=gno_width, kernel="nonlinear")
        self.latent = LatentTransformer(gno_width, dim, layers=transformer_layers, heads=heads, experts=experts)
        self.gno_out = KernelIntegral(dim, gno_width, hidden, hidden=gno_width, kernel="linear")
        self.project = mlp(2 * hidden, 2 * hidden, hidden, layers=mlp_layers)
        self.post = nn.ModuleList(_GraphInteraction(hidden, mlp_layers, ssg_alpha) for _ in range(post_layers))
        self.head = mlp(hidden, hidden, dim, layers=mlp_layers, layer_norm=False)
        self.decoder = KernelIntegralDecoder(dim=dim, channels=dim, hidden=decoder_hidden,
                                             neighbors=decoder_neighbors)
        self.register_buffer("train_lo", torch.full((dim,), math.inf))
        self.register_buffer("train_hi", torch.full((dim,), -math.inf))

    # -- the sparse stepper ------------------------------------------------------------------------
    def graph(self, x: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Edges (2, edge_count) of the sparse graph: particles within `radius` (no self-loops)."""
        from physim.neighbors import neighbor_graph

        return neighbor_graph(x.detach(), radius=self.radius, batch=batch)

    def _frame(self, x: torch.Tensor, batch: torch.Tensor | None, bounds: torch.Tensor | None):
        """Per-scene affine map to the latent frame [−1, 1]^dim: centre and half-size, each (scenes, dim)."""
        scenes = 1 if batch is None else int(batch.max()) + 1
        if self.latent_frame == "domain":
            centre = ((bounds[0] + bounds[1]) / 2).expand(scenes, -1)
            half = ((bounds[1] - bounds[0]) / 2).expand(scenes, -1)
            return centre, half
        b = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if batch is None else batch
        big = torch.finfo(x.dtype).max
        index = b[:, None].expand(-1, self.dim)
        lo = x.new_full((scenes, self.dim), big).scatter_reduce(0, index, x, "amin")
        hi = x.new_full((scenes, self.dim), -big).scatter_reduce(0, index, x, "amax")
        centre = (lo + hi) / 2
        # A cube padded by the GNO radius, so boundary particles have grid points on all sides.
        half = ((hi - lo).max(dim=1, keepdim=True).values / 2 + 1e-6).expand(-1, self.dim)
        half = half / (1 - self.gno_radius_unit)
        return centre, half

    def predict(self, history, particle_type, batch=None, bounds=None):
        from physim.neighbors import neighbor_graph

        self._check_history(history, particle_type)
        x = history[:, -1]
        walls = self._bounds(bounds, x)
        edge_index = self.graph(x, batch)
        h = self.node_encoder(self._features(history, particle_type, walls, self.radius))
        e = self.edge_encoder(edge_features(x, edge_index, self.radius))
        dist = torch.linalg.vector_norm(x[edge_index[0]] - x[edge_index[1]], dim=1, keepdim=True)
        weight = 1.0 / (1.0 + dist / self.radius)
        for layer in self.pre:
            h, e = layer(h, e, edge_index, weight)

        # Latent grid: particles -> grid (nonlinear kernel), transformer, grid -> particles (linear kernel).
        centre, half = self._frame(x, batch, walls)
        b = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if batch is None else batch
        scenes = centre.shape[0]
        coords = unit_grid(self.latent_resolution, self.dim, device=x.device, dtype=x.dtype)
        g = coords.shape[0]
        x_unit = (x - centre[b]) / half[b]
        grid_unit = coords.repeat(scenes, 1)
        grid_batch = torch.arange(scenes, device=x.device).repeat_interleave(g)
        r = self.gno_radius_unit
        to_grid = neighbor_graph(x_unit.detach(), grid_unit, radius=r, batch=b, query_batch=grid_batch)
        z = self.gno_in(h, x_unit, grid_unit, to_grid, r)
        z = self.latent(z.view(scenes, g, -1), coords).reshape(scenes * g, -1)
        to_particles = neighbor_graph(grid_unit, x_unit.detach(), radius=r, batch=grid_batch, query_batch=b)
        o = self.gno_out(z, grid_unit, x_unit, to_particles, r)
        h = h + self.project(torch.cat([h, o], dim=1))

        for layer in self.post:
            h, e = layer(h, e, edge_index, weight)
        return self.head(h)

    # -- sparse sampling and the decoder ----------------------------------------------------------------
    def sparse_count(self, count: int) -> int:
        """Sparse particles for a scene of `count` particles: ceil(count / sparsity), at least 2·dim."""
        return min(count, max(math.ceil(count / self.sparsity), 2 * self.dim))

    def sample_sparse(self, reference: torch.Tensor, batch: torch.Tensor | None = None, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices of the sparse particles of each scene, picked on the reference positions [m] (count, dim)."""
        if batch is None:
            return sample_particles(reference, self.sparse_count(reference.shape[0]), method=self.sampling,
                                    generator=generator)
        out = []
        for s in torch.unique(batch).tolist():
            idx = torch.nonzero(batch == s).flatten()
            pick = sample_particles(reference[idx], self.sparse_count(idx.numel()), method=self.sampling,
                                    generator=generator)
            out.append(idx[pick])
        return torch.cat(out)

    def _warn_outside(self, queries: torch.Tensor, bounds: torch.Tensor | None) -> None:
        if self.bounds is not None:
            lo, hi = (self.bounds if bounds is None else bounds).to(queries)
        else:
            lo, hi = self.train_lo.to(queries), self.train_hi.to(queries)
            if not bool(torch.isfinite(lo).all()):
                return  # never trained: no domain to compare with
        tol = 1e-6 * float(torch.max(hi - lo))
        outside = ((queries < lo - tol) | (queries > hi + tol)).any(dim=1)
        count = int(outside.sum())
        if count:
            warnings.warn(f"{count} of {queries.shape[0]} query points lie outside the training domain "
                          f"[{lo.tolist()}, {hi.tolist()}]; the decoder extrapolates there", stacklevel=3)

    def decoder_plan(self, sparse_reference: torch.Tensor, queries: torch.Tensor, *,
                     batch: torch.Tensor | None = None, query_batch: torch.Tensor | None = None) -> DecoderPlan:
        """Neighbourhoods for `decode`, to reuse while the sparse set and the queries stay the same."""
        return self.decoder.plan(sparse_reference, queries, batch=batch, query_batch=query_batch)

    def decode(self, sparse_reference: torch.Tensor, sparse_positions: torch.Tensor, queries: torch.Tensor, *,
               batch: torch.Tensor | None = None, query_batch: torch.Tensor | None = None,
               plan: DecoderPlan | None = None, bounds: torch.Tensor | None = None) -> torch.Tensor:
        """Positions [m] of material points whose reference positions are `queries`, from the sparse state.

        Args:
            sparse_reference: Reference positions of the sparse particles [m], shape (n, dim).
            sparse_positions: Their current positions [m], shape (n, dim).
            queries: Reference positions to evaluate at [m], shape (q, dim); any number, anywhere
                (a warning counts those outside the training domain).
            batch, query_batch: Scene of each sparse particle and query.
            plan: Neighbourhoods from `decoder_plan` (computed here when None).
            bounds: Domain box overriding the model's for the out-of-domain check.

        Returns:
            Shape (q, dim).
        """
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ConfigError("queries", f"tensor of shape {tuple(queries.shape)}", f"shape (count, {self.dim})")
        self._warn_outside(queries, bounds)
        u = self.decoder(sparse_reference, sparse_positions - sparse_reference, queries, batch=batch,
                         query_batch=query_batch, plan=plan)
        return queries + u

    # -- training and dense rollouts ---------------------------------------------------------------------
    def training_loss(self, batch):
        """One-step acceleration loss on a freshly sampled sparse set of each window, plus the
        decoder loss: dense displacement of the target frame decoded from the sparse one."""
        pos, ptype, ref = batch["positions"], batch["particle_type"], batch["reference"]
        b = batch.get("batch")
        if self.training:
            with torch.no_grad():
                self.train_lo.copy_(torch.minimum(self.train_lo, ref.min(0).values.to(self.train_lo)))
                self.train_hi.copy_(torch.maximum(self.train_hi, ref.max(0).values.to(self.train_hi)))
        idx = self.sample_sparse(ref, b)
        sb = None if b is None else b[idx]
        loss, metrics = self.one_step_loss(pos[idx], ptype[idx], sb)
        if self.decoder_weight > 0:
            target = pos[:, self.history]
            u_sparse = target[idx] - ref[idx]
            u_hat = self.decoder(ref[idx], u_sparse, ref, batch=sb, query_batch=b)
            dec = torch.mean((u_hat - (target - ref)) ** 2) / self.radius**2
            loss = loss + self.decoder_weight * dec
            metrics["decoder_mse"] = float(dec.detach())
        return loss, metrics

    @torch.no_grad()
    def rollout_dense(self, history: torch.Tensor, particle_type: torch.Tensor, steps: int, *,
                      reference: torch.Tensor | None = None, sparse_index: torch.Tensor | None = None,
                      queries: torch.Tensor | None = None, bounds: torch.Tensor | None = None,
                      return_sparse: bool = False):
        """Roll the sparse graph forward and decode every step at the dense particles (or `queries`).

        Args:
            history: Dense positions [m], shape (count, history, dim).
            particle_type: Shape (count,).
            steps: Model steps.
            reference: Reference positions [m] (count, dim); default the first history frame.
            sparse_index: The sparse particles (default: `sample_sparse` with a fixed seed).
            queries: Reference positions to decode at (default: `reference`).
            bounds: Domain box overriding the model's.
            return_sparse: Also return the sparse rollout and the sparse indices.

        Returns:
            Decoded positions [m], shape (steps, q, dim) (and the sparse (steps, n, dim), indices).
        """
        reference = history[:, 0] if reference is None else reference
        if sparse_index is None:
            sparse_index = self.sample_sparse(reference, generator=torch.Generator().manual_seed(0))
        queries = reference if queries is None else queries
        sparse = self.rollout(history[sparse_index], particle_type[sparse_index], steps, bounds=bounds)
        y_ref = reference[sparse_index]
        plan = self.decoder_plan(y_ref, queries)
        self._warn_outside(queries, bounds)
        dense = torch.stack([queries + self.decoder(y_ref, s - y_ref, queries, plan=plan) for s in sparse])
        return (dense, sparse, sparse_index) if return_sparse else dense
