"""Radius and k-nearest-neighbour graphs behind one function, `neighbor_graph`.

Graph networks on particles (GNS, GIOROM) rebuild their graph every step. torch-geometric's
`radius_graph` needs `torch-cluster`, which has no wheel for physim's torch build, so the
search is done here by one of three back ends, all returning the same edges:

- ``"kdtree"``: scipy's `cKDTree` (CPU, multi-threaded queries); the default on the CPU.
- ``"warp"``: Warp's `HashGrid` (CPU or CUDA, where the data already lives); the default
  on CUDA. k-nearest queries grow each query's radius until it holds k points.
- ``"brute"``: all pairs in chunks (the reference the others are tested against).

Every back end only proposes candidates (with a slightly inflated radius); the final
``|p_j − q_i|² ≤ r²`` test and the k-nearest selection are done in torch in the input's
dtype, so the back ends agree edge for edge.

Edges follow torch-geometric's ``source_to_target`` convention: ``edge_index[0]`` indexes
`points` (the neighbour j, message source) and ``edge_index[1]`` indexes `queries` (the
receiver i); edges are sorted by receiver, then by source.
"""

from __future__ import annotations

import math

import torch

from physim.config import check_choice, check_int, check_positive
from physim.errors import ConfigError

__all__ = ["BACKENDS", "knn_graph", "neighbor_graph", "radius_graph"]

BACKENDS = ("auto", "kdtree", "warp", "brute")

# Candidate radii are inflated by this relative margin so float32 candidate searches never
# miss a pair that the exact test (in the input's dtype) accepts.
_INFLATE = 1e-4
# Elements of the (queries, points, dim) difference block the brute-force back end holds at once.
_BRUTE_CHUNK = 1 << 22


def _check_cloud(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise ConfigError(name, type(x).__name__, "a torch tensor of shape (count, dim)")
    if x.dim() != 2 or not 1 <= x.shape[1] <= 3:
        raise ConfigError(name, f"tensor of shape {tuple(x.shape)}", "shape (count, dim) with dim 1, 2 or 3")
    if not x.is_floating_point():
        raise ConfigError(name, f"tensor of dtype {x.dtype}", "a floating-point tensor")
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ConfigError(name, f"tensor with {bad} non-finite rows", "finite coordinates")


def _check_batch(name: str, batch: torch.Tensor | None, count: int) -> None:
    if batch is None:
        return
    if not isinstance(batch, torch.Tensor) or batch.dtype not in (torch.int32, torch.int64) or batch.shape != (count,):
        shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ConfigError(name, shape, f"an integer tensor of shape ({count},) giving each row's graph")


def neighbor_graph(
    points: torch.Tensor,
    queries: torch.Tensor | None = None,
    *,
    radius: float | None = None,
    k: int | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = None,
    batch: torch.Tensor | None = None,
    query_batch: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Edges from each query to its neighbours among `points`.

    With `radius`, every point within that distance (inclusive); with `k`, the k nearest
    points (fewer where fewer exist); with both, the k nearest within `radius`.

    Args:
        points: Point positions [m], shape (point_count, dim), dim 1 to 3.
        queries: Query positions [m], shape (query_count, dim); None means `points`
            (a graph of the cloud onto itself).
        radius: Search radius [m].
        k: Number of nearest neighbours.
        loop: Whether a point is its own neighbour when `queries` is None. With explicit
            `queries` every coincident point counts.
        max_num_neighbors: Keep only the nearest this many within `radius` (None: all).
        batch: Graph index of each point, shape (point_count,); points only see queries
            of the same graph. None: one graph.
        query_batch: Graph index of each query (default: `batch` when `queries` is None).
        backend: ``"auto"``, ``"kdtree"``, ``"warp"`` or ``"brute"``.

    Returns:
        ``edge_index``, int64 tensor of shape (2, edge_count) on the device of `points`:
        row 0 indexes `points` (source), row 1 indexes `queries` (target); sorted by
        target, then source.

    Raises:
        ConfigError: on a malformed cloud (wrong shape, non-finite values), a non-positive
            radius, an invalid k or backend, before any search runs.
    """
    _check_cloud("points", points)
    same = queries is None
    if same:
        queries = points
    else:
        _check_cloud("queries", queries)
        if queries.shape[1] != points.shape[1]:
            raise ConfigError("queries", f"dim {queries.shape[1]}", f"dim {points.shape[1]} like points")
        if queries.device != points.device:
            raise ConfigError("queries", str(queries.device), f"the device of points ({points.device})")
    if radius is None and k is None:
        raise ConfigError("radius", None, "a radius, k, or both")
    if radius is not None:
        check_positive("radius", radius)
        radius = float(radius)
    if k is not None:
        check_int("k", k, 1)
    if max_num_neighbors is not None:
        check_int("max_num_neighbors", max_num_neighbors, 1)
    check_choice("backend", backend, BACKENDS)
    _check_batch("batch", batch, points.shape[0])
    if same and query_batch is None:
        query_batch = batch
    _check_batch("query_batch", query_batch, queries.shape[0])
    if (batch is None) != (query_batch is None):
        raise ConfigError("query_batch", "given for only one side", "both batch and query_batch, or neither")

    if backend == "auto":
        backend = "warp" if points.device.type == "cuda" else "kdtree"
    skip_self = same and not loop
    if batch is None:
        src, dst = _search(points, queries, radius, k, same, skip_self, backend)
    else:
        srcs, dsts = [], []
        for g in torch.unique(torch.cat([batch, query_batch])).tolist():
            p_idx = torch.nonzero(batch == g).flatten()
            q_idx = torch.nonzero(query_batch == g).flatten()
            if p_idx.numel() == 0 or q_idx.numel() == 0:
                continue
            s, d = _search(points[p_idx], queries[q_idx], radius, k, same, skip_self, backend)
            srcs.append(p_idx[s])
            dsts.append(q_idx[d])
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        src = torch.cat(srcs) if srcs else empty
        dst = torch.cat(dsts) if dsts else empty
    if max_num_neighbors is not None and radius is not None and k is None:
        src, dst = _nearest_per_target(points, queries, src, dst, max_num_neighbors)
    order = torch.argsort(dst * max(points.shape[0], 1) + src)
    return torch.stack([src[order], dst[order]])


def radius_graph(x: torch.Tensor, r: float, *, loop: bool = False, batch: torch.Tensor | None = None,
                 max_num_neighbors: int | None = None, backend: str = "auto") -> torch.Tensor:
    """torch-geometric-style ``radius_graph(x, r)``: `neighbor_graph` of a cloud onto itself."""
    return neighbor_graph(x, radius=r, loop=loop, batch=batch, max_num_neighbors=max_num_neighbors, backend=backend)


def knn_graph(x: torch.Tensor, k: int, *, loop: bool = False, batch: torch.Tensor | None = None,
              backend: str = "auto") -> torch.Tensor:
    """torch-geometric-style ``knn_graph(x, k)``: `neighbor_graph` of a cloud onto itself."""
    return neighbor_graph(x, k=k, loop=loop, batch=batch, backend=backend)


# -- one graph ---------------------------------------------------------------------------------


def _sq_dist(points: torch.Tensor, queries: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    return ((points[src] - queries[dst]) ** 2).sum(dim=1)


def _search(points, queries, radius, k, same, skip_self, backend):
    """(source, target) int64 index tensors of one graph, unsorted; `same`: queries are the points."""
    if points.shape[0] == 0 or queries.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        return empty, empty
    if k is None:
        src, dst = _radius_candidates(points, queries, radius, same, skip_self, backend)
        keep = _sq_dist(points, queries, src, dst) <= radius * radius
        return src[keep], dst[keep]
    src, dst = _knn_candidates(points, queries, k, radius, same, skip_self, backend)
    if radius is not None:
        keep = _sq_dist(points, queries, src, dst) <= radius * radius
        src, dst = src[keep], dst[keep]
    if dst.numel() == 0 or int(torch.bincount(dst).max()) <= k:
        # No target has more than k candidates (cKDTree's k nearest of queries that are not the
        # points): all are kept, and the selection's sorts (most of a 100k-query search) are skipped.
        return src, dst
    return _nearest_per_target(points, queries, src, dst, k)


def _remove_self(src, dst, skip_self):
    if not skip_self:
        return src, dst
    keep = src != dst
    return src[keep], dst[keep]


def _candidate_radius(radius: float, points: torch.Tensor, queries: torch.Tensor) -> float:
    """`radius` widened by a margin that covers rounding coordinates to float32."""
    scale = max(float(points.abs().max()), float(queries.abs().max()))
    return radius * (1 + _INFLATE) + 8 * 1.2e-7 * scale + 1e-12


def _radius_candidates(points, queries, radius, same, skip_self, backend):
    r = _candidate_radius(radius, points, queries)
    if backend == "brute":
        return _brute_within(points, queries, r, skip_self)
    if backend == "kdtree":
        return _kdtree_within(points, queries, r, same, skip_self)
    radii = torch.full((queries.shape[0],), r, dtype=torch.float32, device=points.device)
    return _remove_self(*_warp_within(points, queries, radii, r), skip_self)


def _brute_chunks(points, queries):
    """(first query index, squared distances (chunk, point_count)) over chunks of the queries."""
    rows = max(1, _BRUTE_CHUNK // max(1, points.shape[0] * points.shape[1]))
    for start in range(0, queries.shape[0], rows):
        q = queries[start:start + rows]
        yield start, ((q[:, None, :] - points[None, :, :]) ** 2).sum(dim=2)


def _brute_within(points, queries, r, skip_self):
    srcs, dsts = [], []
    for start, d2 in _brute_chunks(points, queries):
        qi, pj = torch.nonzero(d2 <= r * r, as_tuple=True)
        srcs.append(pj)
        dsts.append(qi + start)
    return _remove_self(torch.cat(srcs), torch.cat(dsts), skip_self)


def _kdtree_within(points, queries, r, same, skip_self):
    import numpy as np
    from scipy.spatial import cKDTree

    p = points.detach().to("cpu", torch.float64).numpy()
    tree = cKDTree(p)
    if same:
        pairs = tree.query_pairs(r, output_type="ndarray")  # i < j only
        i, j = pairs[:, 0], pairs[:, 1]
        src = np.concatenate([i, j])
        dst = np.concatenate([j, i])
        if not skip_self:
            ar = np.arange(p.shape[0])
            src, dst = np.concatenate([src, ar]), np.concatenate([dst, ar])
    else:
        q = queries.detach().to("cpu", torch.float64).numpy()
        found = cKDTree(q).sparse_distance_matrix(tree, r, output_type="ndarray")
        src, dst = found["j"], found["i"]
    src_t = torch.from_numpy(np.ascontiguousarray(src, dtype=np.int64)).to(points.device)
    dst_t = torch.from_numpy(np.ascontiguousarray(dst, dtype=np.int64)).to(points.device)
    return src_t, dst_t


def _to_vec3(wp, x: torch.Tensor):
    x3 = torch.zeros((x.shape[0], 3), dtype=torch.float32, device=x.device)
    x3[:, : x.shape[1]] = x.detach()
    return wp.from_torch(x3.contiguous(), dtype=wp.vec3), x3


def _warp_within(points, queries, radii, cell):
    """Candidates within per-query `radii` (float32 tensor) from a Warp HashGrid of cell size `cell`."""
    from physim import runtime
    from physim.neighbors import hashgrid_kernels as kern

    wp = runtime.init_warp()
    device = points.device
    wdev = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
    with wp.ScopedDevice(wdev):
        p_wp, p_keep = _to_vec3(wp, points)
        q_wp, q_keep = _to_vec3(wp, queries)
        dims = (128, 128, 128) if points.shape[1] == 3 else (256, 256, 1)
        grid = wp.HashGrid(*dims, device=wdev)
        grid.build(points=p_wp, radius=float(cell))
        radii = radii.to(torch.float32).contiguous()
        r_wp = wp.from_torch(radii, dtype=wp.float32)
        m = queries.shape[0]
        counts = torch.zeros(m, dtype=torch.int32, device=device)
        wp.launch(kern.count_within, dim=m, inputs=[grid.id, p_wp, q_wp, r_wp],
                  outputs=[wp.from_torch(counts, dtype=wp.int32)])
        offsets = torch.zeros(m, dtype=torch.int32, device=device)
        if m > 1:
            offsets[1:] = torch.cumsum(counts, 0, dtype=torch.int32)[:-1]
        total = int(counts.sum())
        src = torch.zeros(total, dtype=torch.int32, device=device)
        dst = torch.zeros(total, dtype=torch.int32, device=device)
        if total:
            wp.launch(kern.fill_within, dim=m,
                      inputs=[grid.id, p_wp, q_wp, r_wp, wp.from_torch(offsets, dtype=wp.int32)],
                      outputs=[wp.from_torch(src, dtype=wp.int32), wp.from_torch(dst, dtype=wp.int32)])
        wp.synchronize_device(wdev)
        del p_keep, q_keep
    return src.long(), dst.long()


def _knn_candidates(points, queries, k, radius, same, skip_self, backend):
    """Candidate pairs containing each query's k nearest points (and possibly more)."""
    n, m = points.shape[0], queries.shape[0]
    kk = min(k + int(skip_self), n)
    if backend == "brute":
        return _remove_self(*_brute_knn(points, queries, kk), skip_self)
    if backend == "kdtree":
        import numpy as np
        from scipy.spatial import cKDTree

        p = points.detach().to("cpu", torch.float64).numpy()
        q = p if same else queries.detach().to("cpu", torch.float64).numpy()
        bound = np.inf if radius is None else _candidate_radius(radius, points, queries)
        # As many query threads as torch uses (a shared machine gains nothing from more).
        _, idx = cKDTree(p).query(q, k=kk, distance_upper_bound=bound, workers=torch.get_num_threads())
        idx = idx.reshape(m, kk)
        rows = np.repeat(np.arange(m), kk)
        flat = idx.reshape(-1)
        ok = flat < n  # missing neighbours are reported as index n
        src = torch.from_numpy(flat[ok].astype(np.int64)).to(points.device)
        dst = torch.from_numpy(rows[ok].astype(np.int64)).to(points.device)
        return _remove_self(src, dst, skip_self)
    # warp: start from the radius holding ~2k points at the cloud's mean density, then double
    # it for the queries that still hold fewer than k (self included), up to the cloud's diagonal.
    lo, hi = points.min(dim=0).values, points.max(dim=0).values
    ext = torch.clamp(hi - lo, min=float((hi - lo).max()) * 1e-3 + 1e-12)  # flat clouds: avoid a zero volume
    dim = points.shape[1]
    r0 = (2.0 * kk * float(torch.prod(ext)) / n / _unit_ball(dim)) ** (1.0 / dim)
    diag = float(torch.linalg.vector_norm(torch.maximum(hi, queries.max(0).values)
                                          - torch.minimum(lo, queries.min(0).values)))
    cap = _candidate_radius(diag if radius is None else min(diag, radius), points, queries)
    r0 = min(max(r0, cap * 1e-6), cap)
    active = torch.arange(m, device=points.device)
    radii = torch.full((m,), r0, dtype=torch.float32, device=points.device)
    srcs, dsts = [], []
    while active.numel():
        s, d = _warp_within(points, queries[active], radii, r0)
        counts = torch.bincount(d, minlength=active.numel())
        done = (counts >= kk) | (radii >= cap)
        keep = done[d]
        srcs.append(s[keep])
        dsts.append(active[d[keep]])
        active, radii = active[~done], torch.clamp(radii[~done] * 2, max=cap)
    return _remove_self(torch.cat(srcs), torch.cat(dsts), skip_self)


def _unit_ball(dim: int) -> float:
    return math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)


def _brute_knn(points, queries, kk):
    srcs, dsts = [], []
    for start, d2 in _brute_chunks(points, queries):
        srcs.append(torch.topk(d2, kk, dim=1, largest=False).indices.reshape(-1))
        dsts.append(torch.arange(start, start + d2.shape[0], device=points.device).repeat_interleave(kk))
    return torch.cat(srcs), torch.cat(dsts)


def _rank_within_target(dst: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order edges by (target, key) and return (order, rank of each ordered edge within its target)."""
    order = torch.argsort(key, stable=True)
    order = order[torch.argsort(dst[order], stable=True)]
    d_sorted = dst[order]
    counts = torch.bincount(d_sorted) if d_sorted.numel() else d_sorted.new_zeros(0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(d_sorted.numel(), device=dst.device) - starts[d_sorted]
    return order, rank


def _nearest_per_target(points, queries, src, dst, m):
    """Keep each target's `m` nearest sources; ties in distance go to the lower source index,
    so every back end picks the same edges."""
    if src.numel() == 0:
        return src, dst
    d2 = _sq_dist(points, queries, src, dst)
    order = torch.argsort(src, stable=True)
    src, dst, d2 = src[order], dst[order], d2[order]
    order, rank = _rank_within_target(dst, d2)
    keep = order[rank < m]
    return src[keep], dst[keep]
