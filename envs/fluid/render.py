"""Fast pictures of a fluid scene: particles and tools splatted by a fixed orthographic camera.

numpy only (a caption through Pillow): a frame of ten thousand particles takes a few
milliseconds, so `physim play` can film every control step. Points are drawn far to near
(painter's order), shaded by depth; colliders appear as points sampled on their surfaces,
the domain as a wire box.
"""

from __future__ import annotations

import math

import numpy as np

from physim.mpm.colliders import BoxCollider, CapsuleCollider, Collider, CylinderCollider, SphereCollider

__all__ = ["Renderer", "collider_layer", "rotate", "surface_points"]


def _sphere_points(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], -1)


def surface_points(col: Collider, spacing: float, dim: int) -> np.ndarray:
    """Points on the surface of `col` in its own frame [m], shape (n, 3)."""
    h = spacing
    if isinstance(col, BoxCollider):
        hs = list(col.shape_params())
        if dim == 2:
            hs[2] = 0.0
        axes = [np.linspace(-s, s, max(2, int(2 * s / h) + 1)) if s > 0 else np.zeros(1) for s in hs]
        pts = []
        for k in range(3):
            if hs[k] == 0:
                continue
            others = [j for j in range(3) if j != k]
            g = np.stack(np.meshgrid(axes[others[0]], axes[others[1]], indexing="ij"), -1).reshape(-1, 2)
            for sign in (-1.0, 1.0):
                p = np.zeros((len(g), 3))
                p[:, others] = g
                p[:, k] = sign * hs[k]
                pts.append(p)
        return np.concatenate(pts)
    if isinstance(col, SphereCollider):
        r = col.radius
        if dim == 2:
            a = np.linspace(0, 2 * math.pi, max(8, int(2 * math.pi * r / h)), endpoint=False)
            return np.stack([r * np.cos(a), r * np.sin(a), 0 * a], -1)
        return r * _sphere_points(max(20, int(4 * math.pi * r * r / (h * h))))
    if isinstance(col, (CylinderCollider, CapsuleCollider)):
        r, hh = col.radius, col.half_height
        ys = np.linspace(-hh, hh, max(2, int(2 * hh / h) + 1))
        if dim == 2:
            side = [np.stack([s * r + 0 * ys, ys, 0 * ys], -1) for s in (-1.0, 1.0)]
            return np.concatenate(side)
        a = np.linspace(0, 2 * math.pi, max(8, int(2 * math.pi * r / h)), endpoint=False)
        A, Y = np.meshgrid(a, ys, indexing="ij")
        pts = [np.stack([r * np.cos(A), Y, r * np.sin(A)], -1).reshape(-1, 3)]
        if isinstance(col, CapsuleCollider):
            s = r * _sphere_points(max(20, int(4 * math.pi * r * r / (h * h))))
            up = np.array([0.0, hh, 0.0])
            pts += [s[s[:, 1] >= 0] + up, s[s[:, 1] <= 0] - up]
        else:
            rr = np.linspace(0, r, max(2, int(r / h) + 1))
            R, A2 = np.meshgrid(rr, a, indexing="ij")
            disk = np.stack([R * np.cos(A2), 0 * R, R * np.sin(A2)], -1).reshape(-1, 3)
            up = np.array([0.0, hh, 0.0])
            pts += [disk + up, disk - up]
        return np.concatenate(pts)
    return np.zeros((0, 3))  # planes and meshes are not drawn


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by the unit quaternion q (x, y, z, w)."""
    u, w = q[:3], q[3]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


class Renderer:
    """Draws one scene with a fixed camera.

    Args:
        camera: `physim.envs.fluid.spec.Camera` (its angles; the view is fitted to the domain).
        domain: (low, high) corners of the scene box [m] (drawn as a wire box, filling the picture).
        dim: 2 or 3 (a planar scene is viewed face on).
        size: Image width and height [px].
        point_size: Particle spacing [m] (sets the splat radius).
    """

    def __init__(self, camera, domain, dim: int, size: int = 256, point_size: float = 0.02):
        self.size = int(size)
        self.dim = dim
        el, az = (0.0, 0.0) if dim == 2 else (math.radians(camera.elevation), math.radians(camera.azimuth))
        back = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        self.forward = -back
        right = np.cross(self.forward, [0.0, 1.0, 0.0])
        self.right = right / np.linalg.norm(right)
        self.up = np.cross(self.right, self.forward)
        lo = np.concatenate([np.asarray(domain[0], float), [0.0] * (3 - dim)])
        hi = np.concatenate([np.asarray(domain[1], float), [0.0] * (3 - dim)])
        corners = np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]] for i in (0, 1) for j in (0, 1)
                            for k in (0, 1)])
        # fit the domain's projected box into the picture with a 4 % margin
        u, v = corners @ self.right, corners @ self.up
        self.target = 0.5 * ((u.min() + u.max()) * self.right + (v.min() + v.max()) * self.up)
        self.scale = 0.92 * self.size / max(u.max() - u.min(), v.max() - v.min(), 1e-9)
        edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
        t = np.linspace(0, 1, 200)[:, None]
        self.wire = np.concatenate([corners[a] + t * (corners[b] - corners[a]) for a, b in edges])
        self.radius = max(1, round(0.6 * point_size * self.scale))

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel columns, rows and depths of points p [m] (n, 3)."""
        rel = p - self.target
        sx = self.size / 2 + rel @ self.right * self.scale
        sy = self.size / 2 - rel @ self.up * self.scale
        return sx, sy, rel @ self.forward

    def draw(self, layers: list[tuple[np.ndarray, np.ndarray, int]], caption: str = "") -> np.ndarray:
        """Image (size, size, 3) uint8 of `layers`: (points (n, 3), RGB colours (n, 3) in [0, 1], radius px)."""
        s = self.size
        img = np.empty((s, s, 3), dtype=np.float32)
        img[:] = np.linspace(0.97, 0.86, s, dtype=np.float32)[:, None, None]
        wx, wy, _ = self.project(self.wire)
        ok = (wx >= 0) & (wx < s) & (wy >= 0) & (wy < s)
        img[wy[ok].astype(int), wx[ok].astype(int)] = 0.6
        pts = [p for p, _, _ in layers if len(p)]
        if pts:
            p = np.concatenate(pts)
            col = np.concatenate([c for q, c, _ in layers if len(q)])
            rad = np.concatenate([np.full(len(q), r) for q, _, r in layers if len(q)])
            x, y, depth = self.project(p)
            span = max(float(depth.max() - depth.min()), 1e-9)
            shade = (1.0 - 0.35 * (depth - depth.min()) / span)[:, None]
            col = np.clip(col * shade, 0, 1).astype(np.float32)
            # points far to near, each with its whole disc: numpy assigns repeated indices in order,
            # so the nearest splat wins every pixel it covers (a z-buffer without one)
            order = np.argsort(-depth, kind="stable")
            xi, yi = np.round(x[order]).astype(int), np.round(y[order]).astype(int)
            col, rad = col[order], rad[order]
            rmax = int(rad.max())
            oy, ox = (g.ravel() for g in np.mgrid[-rmax:rmax + 1, -rmax:rmax + 1])
            cover = ox[None, :] ** 2 + oy[None, :] ** 2 <= rad[:, None] ** 2 + 0.5  # (n, offsets)
            cx = (xi[:, None] + ox[None, :])[cover]
            cy = (yi[:, None] + oy[None, :])[cover]
            ci = np.broadcast_to(np.arange(len(xi))[:, None], cover.shape)[cover]
            ok = (cx >= 0) & (cx < s) & (cy >= 0) & (cy < s)
            img[cy[ok], cx[ok]] = col[ci[ok]]
        out = (img * 255).astype(np.uint8)
        if caption:
            out = _caption(out, caption)
        return out


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    ImageDraw.Draw(im).text((4, 3), text, fill=(20, 20, 20))
    return np.asarray(im)


def collider_layer(cols: list[Collider], poses: np.ndarray, spacing: float, dim: int, colors) -> list:
    """Surface points of colliders at `poses` (k, 7), as renderer layers."""
    out = []
    for c, pose, color in zip(cols, poses, colors):
        local = surface_points(c, spacing, dim)
        if not len(local):
            continue
        world = pose[:3] + rotate(pose[3:], local)
        out.append((world, np.broadcast_to(np.asarray(color, dtype=np.float32), world.shape), 1))
    return out

