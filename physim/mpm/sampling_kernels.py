"""Inside/outside test of points against a closed triangle mesh (Warp winding number)."""

import numpy as np
import warp as wp

from physim.runtime import init_warp

__all__ = ["inside_mesh"]


@wp.kernel
def _winding(mesh: wp.uint64, pts: wp.array(dtype=wp.vec3), inside: wp.array(dtype=wp.int32)):
    i = wp.tid()
    q = wp.mesh_query_point_sign_winding_number(mesh, pts[i], 1e6)
    if q.result and q.sign < 0.0:
        inside[i] = 1


def inside_mesh(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Boolean mask of `points` (N, 3) inside the closed mesh (`vertices`, `triangles`)."""
    init_warp()
    mesh = wp.Mesh(points=wp.array(vertices.astype(np.float32), dtype=wp.vec3, device="cpu"),
                   indices=wp.array(triangles.reshape(-1).astype(np.int32), dtype=wp.int32, device="cpu"))
    pts = wp.array(points.astype(np.float32), dtype=wp.vec3, device="cpu")
    inside = wp.zeros(len(points), dtype=wp.int32, device="cpu")
    wp.launch(_winding, len(points), inputs=[mesh.id, pts], outputs=[inside], device="cpu")
    return inside.numpy().astype(bool)
