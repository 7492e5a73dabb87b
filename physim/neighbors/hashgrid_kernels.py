"""Warp kernels of the hash-grid neighbour search (candidates only; exact filtering is done in torch).

Two passes over the queries: count the points within the search radius, then, after an
exclusive prefix sum of the counts, write each query's neighbours into its slice. Points
are padded to 3-D (z = 0 for planar problems) because Warp's HashGrid is 3-D.
"""

import warp as wp


@wp.kernel
def count_within(
    grid: wp.uint64,
    points: wp.array(dtype=wp.vec3),
    queries: wp.array(dtype=wp.vec3),
    radii: wp.array(dtype=float),
    # outputs
    counts: wp.array(dtype=wp.int32),
):
    """counts[i] = #{j : |p_j − q_i| ≤ radii[i]}."""
    i = wp.tid()
    q = queries[i]
    r = radii[i]
    query = wp.hash_grid_query(grid, q, r)
    # int(0), not 0: Warp needs a dynamic variable to mutate in the loop.
    j = int(0)  # noqa: RUF046, UP018
    n = int(0)  # noqa: RUF046, UP018
    while wp.hash_grid_query_next(query, j):
        if wp.length_sq(points[j] - q) <= r * r:
            n += 1
    counts[i] = n


@wp.kernel
def fill_within(
    grid: wp.uint64,
    points: wp.array(dtype=wp.vec3),
    queries: wp.array(dtype=wp.vec3),
    radii: wp.array(dtype=float),
    offsets: wp.array(dtype=wp.int32),
    # outputs
    sources: wp.array(dtype=wp.int32),
    targets: wp.array(dtype=wp.int32),
):
    """Write the pairs counted by `count_within` into slice offsets[i] of the edge arrays."""
    i = wp.tid()
    q = queries[i]
    r = radii[i]
    query = wp.hash_grid_query(grid, q, r)
    j = int(0)  # noqa: RUF046, UP018
    k = offsets[i]
    while wp.hash_grid_query_next(query, j):
        if wp.length_sq(points[j] - q) <= r * r:
            sources[k] = j
            targets[k] = i
            k += 1
