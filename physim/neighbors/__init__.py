"""Neighbour search for particle graphs: radius and k-nearest graphs on CPU or GPU.

    from physim.neighbors import neighbor_graph
    edge_index = neighbor_graph(x, radius=0.03)               # cloud onto itself
    edge_index = neighbor_graph(sparse, queries=dense, k=8)   # bipartite

See `physim.neighbors.search` for the back ends (scipy cKDTree, Warp HashGrid, brute force).
"""

from physim.neighbors.search import BACKENDS, knn_graph, neighbor_graph, radius_graph

__all__ = ["BACKENDS", "knn_graph", "neighbor_graph", "radius_graph"]
