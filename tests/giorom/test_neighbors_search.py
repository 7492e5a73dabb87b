"""Verify the neighbour search (radius and kNN graphs) against brute force, for every back end."""

from __future__ import annotations

import pytest
import torch

from physim.errors import ConfigError
from physim.neighbors import knn_graph, neighbor_graph, radius_graph

BACKENDS = ["kdtree", "warp", "brute"]


def _brute_radius(points, queries, r, skip_self):
    """All pairs (j, i) with |p_j − q_i| <= r, by the definition, in float64."""
    d2 = ((queries.double()[:, None] - points.double()[None]) ** 2).sum(-1)
    qi, pj = torch.nonzero(d2 <= r * r, as_tuple=True)
    keep = pj != qi if skip_self else torch.ones_like(pj, dtype=torch.bool)
    return {(int(j), int(i)) for j, i in zip(pj[keep], qi[keep])}


def _edge_set(edge_index):
    return {(int(j), int(i)) for j, i in edge_index.t()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_radius_graph_equals_brute_force(backend, dim):
    """Verify that the radius graph of a cloud holds exactly the pairs within the radius (no self-loops)."""
    gen = torch.Generator().manual_seed(dim)
    x = torch.rand(400, dim, generator=gen, dtype=torch.float64)
    r = {1: 0.01, 2: 0.06, 3: 0.15}[dim]
    e = radius_graph(x, r, backend=backend)
    assert e.dtype == torch.long and e.shape[0] == 2
    assert _edge_set(e) == _brute_radius(x, x, r, skip_self=True)
    assert len(_edge_set(e)) == e.shape[1] > 0  # no duplicates, not trivial
    # Sorted by receiver, then sender.
    key = e[1] * x.shape[0] + e[0]
    assert torch.all(key[1:] > key[:-1])
    with_loops = radius_graph(x, r, loop=True, backend=backend)
    assert _edge_set(with_loops) == _brute_radius(x, x, r, skip_self=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bipartite_radius_float32_matches_brute_force(backend):
    """Verify queries against another cloud in float32, including queries on top of points."""
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(500, 3, generator=gen) * 2 - 1
    q = torch.cat([p[:20], torch.rand(300, 3, generator=gen) * 2 - 1])
    e = neighbor_graph(p, q, radius=0.2, backend=backend)
    # The exact test runs in the input dtype; compare with the same float32 arithmetic.
    d2 = ((q[:, None] - p[None]) ** 2).sum(-1)
    qi, pj = torch.nonzero(d2 <= 0.2 * 0.2, as_tuple=True)
    assert _edge_set(e) == {(int(j), int(i)) for j, i in zip(pj, qi)}
    assert all((i, i) in _edge_set(e) for i in range(20))  # coincident points count with explicit queries


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [2, 3])
def test_knn_graph_equals_brute_force(backend, dim):
    """Verify that each query gets exactly its k nearest points (self excluded), also capped by a radius."""
    gen = torch.Generator().manual_seed(10 + dim)
    x = torch.rand(300, dim, generator=gen, dtype=torch.float64)
    k = 7
    e = knn_graph(x, k, backend=backend)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    d2.fill_diagonal_(float("inf"))
    nearest = torch.topk(d2, k, dim=1, largest=False).indices
    expected = {(int(j), i) for i in range(x.shape[0]) for j in nearest[i]}
    assert _edge_set(e) == expected and e.shape[1] == k * x.shape[0]
    r = 0.08 if dim == 2 else 0.15
    capped = neighbor_graph(x, k=k, radius=r, backend=backend)
    within = {(j, i) for (j, i) in expected if float(d2[i, j]) <= r * r}
    assert _edge_set(capped) == within


@pytest.mark.parametrize("backend", BACKENDS)
def test_bipartite_knn_with_far_queries(backend):
    """Verify kNN for queries far outside the cloud (the hash-grid search must widen its radius)."""
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(200, 2, generator=gen, dtype=torch.float64)
    q = torch.cat([torch.rand(50, 2, generator=gen, dtype=torch.float64), torch.tensor([[5.0, 5.0], [-3.0, 0.5]],
                                                                                       dtype=torch.float64)])
    e = neighbor_graph(p, q, k=5, backend=backend)
    d2 = ((q[:, None] - p[None]) ** 2).sum(-1)
    nearest = torch.topk(d2, 5, dim=1, largest=False).indices
    assert _edge_set(e) == {(int(j), i) for i in range(q.shape[0]) for j in nearest[i]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_are_separate_graphs(backend):
    """Verify that points of different scenes never connect, even when they overlap in space."""
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(150, 2, generator=gen, dtype=torch.float64)
    b = torch.rand(100, 2, generator=gen, dtype=torch.float64)
    x = torch.cat([a, b])
    batch = torch.cat([torch.zeros(150, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    e = radius_graph(x, 0.1, batch=batch, backend=backend)
    expected = _brute_radius(a, a, 0.1, True) | {(j + 150, i + 150) for j, i in _brute_radius(b, b, 0.1, True)}
    assert _edge_set(e) == expected
    ek = knn_graph(x, 4, batch=batch, backend=backend)
    assert bool((batch[ek[0]] == batch[ek[1]]).all()) and ek.shape[1] == 4 * 250


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_num_neighbors_keeps_the_nearest(backend):
    """Verify that max_num_neighbors keeps each receiver's nearest senders within the radius."""
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    e = neighbor_graph(x, radius=0.15, max_num_neighbors=6, backend=backend)
    ek = neighbor_graph(x, radius=0.15, k=6, backend=backend)
    assert torch.equal(e, ek)
    assert int(torch.bincount(e[1]).max()) == 6


def test_backends_agree_exactly_and_auto_runs():
    """Verify that all back ends return identical edge tensors (not only the same sets)."""
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(1000, 3, generator=gen)
    graphs = [neighbor_graph(x, radius=0.1, backend=b) for b in ["auto", *BACKENDS]]
    assert all(torch.equal(graphs[0], g) for g in graphs[1:])


def test_empty_and_tiny_clouds():
    """Verify graphs of isolated, single and empty clouds."""
    x = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    for b in BACKENDS:
        assert radius_graph(x, 0.5, backend=b).shape == (2, 0)
        assert radius_graph(x[:1], 0.5, backend=b).shape == (2, 0)
        assert radius_graph(x[:0], 0.5, backend=b).shape == (2, 0)
        assert torch.equal(knn_graph(x, 3, backend=b), torch.tensor([[1, 0], [0, 1]]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"points": torch.zeros(5, 4), "radius": 0.1}, "points"),
        ({"points": torch.zeros(5), "radius": 0.1}, "points"),
        ({"points": torch.tensor([[0.0, float("nan")]]), "radius": 0.1}, "points"),
        ({"points": torch.zeros(5, 2, dtype=torch.long), "radius": 0.1}, "points"),
        ({"points": torch.zeros(5, 2)}, "radius"),
        ({"points": torch.zeros(5, 2), "radius": -1.0}, "radius"),
        ({"points": torch.zeros(5, 2), "k": 0}, "k"),
        ({"points": torch.zeros(5, 2), "radius": 0.1, "backend": "cuda-magic"}, "backend"),
        ({"points": torch.zeros(5, 2), "queries": torch.zeros(3, 3), "radius": 0.1}, "queries"),
        ({"points": torch.zeros(5, 2), "radius": 0.1, "batch": torch.zeros(4, dtype=torch.long)}, "batch"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, field):
    """Verify that malformed input raises one ConfigError naming the field, before any search."""
    with pytest.raises(ConfigError) as info:
        neighbor_graph(**kwargs)
    assert info.value.field == field
    assert "\n" not in str(info.value)
