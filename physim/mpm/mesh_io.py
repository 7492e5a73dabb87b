"""Reading surface triangles from mesh files with meshio (validated, one clear error per bad file)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from physim.errors import ConfigError

__all__ = ["read_surface"]


def read_surface(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and outward-agnostic triangles (T, 3) of a mesh file.

    Triangle meshes (.obj, .stl, ...) are returned as they are; for tetrahedral meshes
    (.msh) the boundary faces (those belonging to one tetrahedron only) are returned.
    """
    import meshio

    try:
        mesh = meshio.read(path)
    except Exception as exc:  # meshio raises many types; report one line naming the file
        raise ConfigError("path", path, f"a mesh file meshio can read ({type(exc).__name__}: {exc})") from None
    pts = np.asarray(mesh.points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.isfinite(pts).all():
        raise ConfigError("path", path, "a mesh with finite 3D vertex coordinates")
    tris = [c.data for c in mesh.cells if c.type == "triangle"]
    if tris:
        return pts, np.concatenate(tris).astype(np.int32)
    tets = [c.data for c in mesh.cells if c.type == "tetra"]
    if not tets:
        raise ConfigError("path", path, "a mesh with triangle or tetra cells")
    t = np.concatenate(tets)
    faces = np.concatenate([t[:, [0, 2, 1]], t[:, [0, 1, 3]], t[:, [1, 2, 3]], t[:, [0, 3, 2]]])
    keys = Counter(map(tuple, np.sort(faces, axis=1)))
    boundary = np.array([keys[tuple(sorted(f))] == 1 for f in faces])
    return pts, faces[boundary].astype(np.int32)
