"""GIOROM's discretisation-agnostic decoder: a field on a sparse point set, evaluated anywhere.

Given sparse points ``y_j`` (reference positions) carrying values ``f_j`` (displacements,
velocities, ...), the decoder evaluates the field at arbitrary query points ``x`` by a
kernel integral over the query's k nearest sparse points::

    f̂(x) = Σ_j w_j(x) c_j(x) / Σ_j w_j(x)
    c_j(x) = f_j + (G_j + C_j)(x − y_j) + B_jᵀ (φ((x − y_j)/ℓ_j) − φ(0))
    w_j(x) = exp(s_j) · (1 − |x − y_j|/ρ_x)² / |x − y_j|²

- ``G_j``: the least-squares gradient of f at y_j from its sparse neighbours (moving least
  squares, first order);
- ``C_j``, ``B_j``, ``s_j``: learned from a latent ``h_j`` that a kernel-integral layer computes
  over y_j's sparse neighbourhood (relative positions and value differences); φ are fixed
  random Fourier features; ``ℓ_j`` is y_j's mean neighbour distance, ``ρ_x`` just over the
  distance to the query's k-th neighbour.

Because the weights are singular at the sparse points and every learned term vanishes at
``x = y_j``, the decoder reproduces the given values exactly at the sparse points (a query
within 1e-7·ρ of a sparse point takes that point's value), whatever the weights; away from
them the learned terms correct the first-order interpolation. All inputs enter through
differences, so the decoder is translation-equivariant. The learned heads start at zero:
an untrained decoder is inverse-distance-weighted first-order interpolation.

Two evaluation paths give the same result (to float32 round-off): the torch sparse × dense
product (differentiable; used for training, float64 and whenever a gradient is needed) and,
for float32 inference, a Warp kernel (`decoder_kernels.py`, CPU and CUDA) that contracts each
query's plan rows with its neighbours' coefficients in one pass, about twice as fast as the
CSR product on one CPU thread (docs/benchmarks.md, "GIOROM vs GNS").

GIOROM v1 (arXiv 2407.03925) decodes with an unweighted mean of a learned kernel over a
radius; that mean does not reproduce the sparse values, which physim requires.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from physim.config import check_choice, check_int
from physim.errors import ConfigError

from ..lagrangian.nn import mlp
from .kernel_integral import scatter_mean

__all__ = ["DECODER_BACKENDS", "DecoderPlan", "KernelIntegralDecoder"]

_SNAP = 1e-7
DECODER_BACKENDS = ("auto", "torch", "warp")


@dataclass
class DecoderPlan:
    """Neighbourhoods that depend only on the reference positions, reused across time steps.

    Attributes:
        source_edges: kNN edges among the sparse points (2, E_s): neighbour, node.
        length: Mean neighbour distance ℓ_j of each sparse point [m], shape (n, 1).
        query_edges: Edges (2, E_q): sparse point, query; in the order of the matrix's values.
        matrix: Sparse CSR matrix, shape (q, n·(1 + dim + features)): row r, for query
            x = ``order[r]``, holds, for each of
            its sparse neighbours j, ``w̃_j(x) · [1, x − y_j, φ((x − y_j)/ℓ_j) − φ(0)]`` at
            columns ``j·(1 + dim + features) ...``, where ``w̃_j(x)`` is the taper / |x − y_j|²
            (snapped queries: 1 on the coincident point, 0 elsewhere). Every query-side
            quantity is fixed while the plan is, so a decode is one sparse × dense product.
        query_count: Number of queries.
        order: Query of each matrix row, shape (q,) (None: row r is query r).
    """

    source_edges: torch.Tensor
    length: torch.Tensor
    query_edges: torch.Tensor
    matrix: torch.Tensor
    query_count: int
    order: torch.Tensor | None = None
    _rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def edge_rows(self, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The matrix's layout per edge for the Warp kernel: int32 edge offsets of each row, shape
        (q + 1,), the sparse point of each edge, shape (E_q,), and the query of each row, shape (q,)
        (cached; the values are the matrix's)."""
        if self._rows is None:
            crow, col = self.matrix.crow_indices(), self.matrix.col_indices()
            order = (torch.arange(self.query_count, device=crow.device) if self.order is None else self.order)
            self._rows = ((crow // width).to(torch.int32).contiguous(),
                          (col[::width] // width).to(torch.int32).contiguous(), order.to(torch.int32).contiguous())
        return self._rows


class KernelIntegralDecoder(nn.Module):
    """Evaluate a sparse field at arbitrary query points (see the module docstring).

    Args:
        dim: Spatial dimension.
        channels: Field components (dim for a displacement).
        hidden: Width of the neighbourhood latent and its MLPs.
        neighbors: Sparse points per query (k).
        encoder_neighbors: Sparse neighbours per sparse point for G_j and h_j.
        features: Random Fourier features φ.
        mlp_layers: Hidden layers per MLP.
        seed: Seed of the fixed Fourier frequencies.
    """

    def __init__(self, *, dim: int, channels: int, hidden: int = 64, neighbors: int = 8, encoder_neighbors: int = 8,
                 features: int = 16, mlp_layers: int = 2, seed: int = 0):
        super().__init__()
        for name, v, lo in (("dim", dim, 1), ("channels", channels, 1), ("hidden", hidden, 1),
                            ("neighbors", neighbors, 1), ("encoder_neighbors", encoder_neighbors, 1),
                            ("features", features, 0), ("mlp_layers", mlp_layers, 1)):
            check_int(name, v, lo)
        self.dim, self.channels, self.neighbors, self.encoder_neighbors = dim, channels, neighbors, encoder_neighbors
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freq", torch.randn(dim, features, generator=gen))
        self.register_buffer("phase", torch.rand(features, generator=gen) * 2 * torch.pi)
        self.edge_mlp = mlp(dim + 2 * channels, hidden, hidden, layers=mlp_layers, activation=nn.GELU)
        self.node_mlp = mlp(hidden, hidden, hidden, layers=mlp_layers, activation=nn.GELU)
        self.head_c = nn.Linear(hidden, channels * dim)
        self.head_b = nn.Linear(hidden, features * channels)
        self.head_s = nn.Linear(hidden, 1)
        for head in (self.head_c, self.head_b, self.head_s):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    # -- neighbourhoods ------------------------------------------------------------------------
    def plan(self, source_ref: torch.Tensor, queries: torch.Tensor, *, batch: torch.Tensor | None = None,
             query_batch: torch.Tensor | None = None) -> DecoderPlan:
        """Neighbourhoods of the sparse points and of the queries (reference positions [m])."""
        from physim.neighbors import neighbor_graph

        src_ref = source_ref.detach()
        n = src_ref.shape[0]
        k_enc = min(self.encoder_neighbors, max(n - 1, 1))
        if n > 1:
            s_edges = neighbor_graph(src_ref, k=k_enc, batch=batch)
        else:
            s_edges = torch.zeros((2, 0), dtype=torch.long, device=src_ref.device)
        dist = torch.linalg.vector_norm(src_ref[s_edges[0]] - src_ref[s_edges[1]], dim=1)
        length = scatter_mean(dist[:, None], s_edges[1], n)
        length = torch.where(length > 0, length, torch.clamp(length.max(), min=1e-6))
        q = queries.detach()
        q_edges = neighbor_graph(src_ref, q, k=min(self.neighbors, n), batch=batch, query_batch=query_batch)
        offset = q[q_edges[1]] - src_ref[q_edges[0]]
        dist = torch.linalg.vector_norm(offset, dim=1)
        m = q.shape[0]
        # Matrix rows in the order of each query's nearest sparse point, so that consecutive rows
        # share neighbours and a decode re-reads their coefficients from cache (at 100k queries from
        # 1k points this halves the kernel's time; random order misses the L1 cache on most edges).
        # The edges (grouped by query) are put in row order here, before the per-edge features.
        nearest_d = torch.full((m,), torch.inf, dtype=dist.dtype, device=dist.device).scatter_reduce(
            0, q_edges[1], dist, "amin")
        is_nearest = dist == nearest_d[q_edges[1]]
        nearest = torch.full((m,), n, dtype=torch.long, device=dist.device).scatter_reduce(
            0, q_edges[1][is_nearest], q_edges[0][is_nearest], "amin")
        order = torch.argsort(nearest, stable=True)
        counts = torch.bincount(q_edges[1], minlength=m)  # edges per query
        starts = torch.cumsum(counts, 0) - counts  # first edge of each query now
        row_counts = counts[order]
        row_starts = torch.cumsum(row_counts, 0) - row_counts  # first edge of each row after
        perm = (torch.repeat_interleave(starts[order] - row_starts, row_counts)
                + torch.arange(q_edges.shape[1], device=dist.device))
        q_edges, offset, dist = q_edges[:, perm], offset[perm], dist[perm]
        rho = torch.zeros(m, dtype=dist.dtype, device=dist.device).scatter_reduce(
            0, q_edges[1], dist, "amax", include_self=False) * 1.05
        rho = torch.clamp(rho, min=1e-12)[q_edges[1]]
        taper = torch.clamp(1 - dist / rho, min=0) ** 2
        weight = taper / torch.clamp(dist * dist, min=(_SNAP * rho) ** 2)
        snapped = dist <= _SNAP * rho
        has_snap = torch.zeros(m, dtype=torch.bool, device=q.device).index_fill_(0, q_edges[1][snapped], True)
        weight = torch.where(has_snap[q_edges[1]], snapped.to(weight.dtype), weight)
        # Fourier features of the offsets: fixed while the plan is (they involve no learned weight).
        phi = torch.sin((offset / length[q_edges[0]]) @ self.freq.to(offset) + self.phase.to(offset)) - torch.sin(
            self.phase.to(offset))
        return DecoderPlan(s_edges, length, q_edges, _query_matrix(q_edges, offset, weight, phi, n, order), m, order)

    # -- evaluation ----------------------------------------------------------------------------
    def forward(self, source_ref: torch.Tensor, values: torch.Tensor, queries: torch.Tensor, *,
                batch: torch.Tensor | None = None, query_batch: torch.Tensor | None = None,
                plan: DecoderPlan | None = None, backend: str = "auto") -> torch.Tensor:
        """Field at the queries.

        Args:
            source_ref: Sparse reference positions [m], shape (n, dim).
            values: Field at the sparse points, shape (n, channels).
            queries: Query reference positions [m], shape (q, dim).
            batch, query_batch: Scene index of each sparse point and query (None: one scene).
            plan: Precomputed neighbourhoods (`plan`), e.g. reused over a rollout.
            backend: ``"torch"`` (sparse × dense product, differentiable), ``"warp"`` (the
                float32 inference kernel; no gradient) or ``"auto"``: the kernel when the values
                are float32 and no gradient is being recorded, else torch.

        Returns:
            Shape (q, channels).

        Raises:
            ConfigError: on an unknown backend, or ``"warp"`` with float64 values or while a
                gradient is being recorded.
        """
        check_choice("backend", backend, DECODER_BACKENDS)
        if backend == "warp":
            if values.dtype != torch.float32:
                raise ConfigError("backend", "warp", f"'torch' for {values.dtype} values (the kernel is float32)")
            if self._needs_grad(source_ref, values):
                raise ConfigError("backend", "warp", "'torch' while a gradient is recorded (the kernel has none)")
        if plan is None:
            plan = self.plan(source_ref, queries, batch=batch, query_batch=query_batch)
        n, c, d = values.shape[0], self.channels, self.dim
        s_nb, s_node = plan.source_edges
        d_y = source_ref[s_nb] - source_ref[s_node]
        d_f = values[s_nb] - values[s_node]
        ell = plan.length.to(values)
        # First-order moving least squares: G_j minimises Σ_k |Δf_jk − G_j Δy_jk|² (+ a small ridge).
        eye = torch.eye(d, dtype=values.dtype, device=values.device)
        a = scatter_mean(d_y[:, :, None] * d_y[:, None, :], s_node, n) + 1e-6 * (ell * ell)[:, :, None] * eye
        b = scatter_mean(d_f[:, :, None] * d_y[:, None, :], s_node, n)
        grad = torch.linalg.solve(a, b.transpose(1, 2)).transpose(1, 2)  # (n, c, d)
        resid = d_f - (grad[s_node] @ d_y[:, :, None])[:, :, 0]
        scale_f = torch.sqrt(scatter_mean((d_f * d_f).sum(1, keepdim=True), s_node, n) + 1e-30)  # field variation
        e_ell = ell[s_node]
        h = scatter_mean(self.edge_mlp(torch.cat([d_y / e_ell, d_f / (scale_f[s_node] + 1e-12 * e_ell),
                                                  resid / (scale_f[s_node] + 1e-12 * e_ell)], dim=1)), s_node, n)
        h = self.node_mlp(h)
        corr = self.head_c(h).view(n, c, d) * (scale_f / ell)[:, :, None]
        coef = self.head_b(h).view(n, -1, c) * scale_f[:, :, None]
        log_w = torch.clamp(self.head_s(h)[:, 0], -3.0, 3.0)

        # Σ_j w̃_j(x) e^{s_j} c_j(x) and Σ_j w̃_j(x) e^{s_j} in one sparse product: row j of `per_point`
        # stacks e^{s_j}·[f_j; (G_j + C_j)ᵀ; B_j] (the coefficients of [1, x − y_j, φ]) and, in an
        # extra channel, e^{s_j} against the constant 1 (the denominator). Gathering these per
        # query edge instead costs ~10× more time and memory at 100k queries.
        scale = torch.exp(log_w)[:, None, None]
        per_point = torch.cat([values[:, None, :], (grad + corr).transpose(1, 2), coef], dim=1) * scale
        denom = torch.zeros_like(per_point[:, :, :1])
        denom[:, 0] = scale[:, 0]
        if backend == "warp" or (backend == "auto" and self._kernel_applies(source_ref, values, plan)):
            return _decode_warp(plan, torch.cat([per_point, denom], dim=2), c)
        matrix = plan.matrix if plan.matrix.dtype == values.dtype else plan.matrix.to(values.dtype)
        out = matrix @ torch.cat([per_point, denom], dim=2).reshape(-1, c + 1)
        out = out[:, :c] / out[:, c:]
        if plan.order is None:
            return out
        return torch.empty_like(out).index_copy_(0, plan.order, out)

    def _needs_grad(self, source_ref: torch.Tensor, values: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (values.requires_grad or source_ref.requires_grad
                                            or any(p.requires_grad for p in self.parameters()))

    def _kernel_applies(self, source_ref: torch.Tensor, values: torch.Tensor, plan: DecoderPlan) -> bool:
        m = plan.matrix
        return (values.dtype == torch.float32 and m.dtype == torch.float32 and m.crow_indices().dtype == torch.int32
                and values.device.type in ("cpu", "cuda") and not self._needs_grad(source_ref, values))


def _decode_warp(plan: DecoderPlan, coef: torch.Tensor, channels: int) -> torch.Tensor:
    """The decode by the Warp kernel: `coef` (n, width, channels + 1) are the per-point coefficients
    of the torch path (numerators and denominator); returns (q, channels) float32."""
    from physim import runtime

    from . import decoder_kernels as kern

    wp = runtime.init_warp()
    width = coef.shape[1]
    m = plan.matrix if plan.matrix.dtype == torch.float32 else plan.matrix.to(torch.float32)
    rows, cols, order = plan.edge_rows(width)
    device = coef.device
    out = torch.empty((plan.query_count, channels), dtype=torch.float32, device=device)
    if plan.query_count == 0:
        return out
    # (n, channels + 1, width): each output column's coefficients contiguous over the features.
    coef_t = coef.detach().to(torch.float32).transpose(1, 2).contiguous()
    wdev = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
    stream = wp.stream_from_torch(device) if device.type == "cuda" else None
    wp.launch(kern.contraction_kernel(width, channels), dim=plan.query_count, device=wdev, stream=stream,
              inputs=[wp.from_torch(rows), wp.from_torch(cols), wp.from_torch(order),
                      wp.from_torch(m.values().contiguous()), wp.from_torch(coef_t.reshape(-1))],
              outputs=[wp.from_torch(out.view(-1))])
    return out


def _query_matrix(edges: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, phi: torch.Tensor, n: int,
                  order: torch.Tensor) -> torch.Tensor:
    """The plan's sparse CSR matrix (see `DecoderPlan.matrix`) from the query edges (source, query);
    row r holds query ``order[r]``."""
    j, qi = edges
    m = order.shape[0]
    rank = torch.empty_like(order).index_copy_(0, order, torch.arange(m, device=order.device))
    row = rank[qi]
    if row.numel() > 1 and not bool((row[1:] >= row[:-1]).all()):
        perm = torch.argsort(row, stable=True)
        j, row, offset, weight, phi = j[perm], row[perm], offset[perm], weight[perm], phi[perm]
    feats = torch.cat([torch.ones_like(weight)[:, None], offset, phi], dim=1) * weight[:, None]
    width = feats.shape[1]
    index = torch.int32 if n * width < 2**31 - 1 and feats.numel() < 2**31 - 1 else torch.int64
    cols = (j.to(index)[:, None] * width + torch.arange(width, dtype=index, device=j.device)).reshape(-1)
    crow = torch.zeros(m + 1, dtype=index, device=j.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=m) * width, 0).to(index)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is long stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, feats.reshape(-1), size=(m, n * width))
