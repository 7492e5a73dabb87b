"""Small analytic and simulated particle trajectories for tests and examples (no MPM needed).

- `rigid_body`: a disc (2-D) or ball (3-D) translating and spinning at constant rates: an
  exact solution whose accelerations are the centripetal ones.
- `soft_particles`: particles with gravity, short-range repulsion, pairwise viscous damping
  and walls, integrated with symplectic Euler: local interactions like a granular/fluid
  material, cheap enough for CPU tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physim.config import check_int, check_positive

from .dataset import Trajectory

__all__ = ["rigid_body", "soft_particles"]


def _rotation(dim: int, angle: float, axis: np.ndarray | None) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if dim == 2:
        return np.array([[c, -s], [s, c]])
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _ball(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    pts = rng.normal(size=(count, dim))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    return pts * rng.random((count, 1)) ** (1.0 / dim)


def rigid_body(*, count: int = 200, frames: int = 40, dim: int = 2, seed: int = 0, size: float = 0.15,
               speed: float = 2e-3, spin: float = 0.05, material_type: int = 0) -> Trajectory:
    """A rigid disc/ball: centre moving at `speed` [m/frame], spinning at `spin` [rad/frame].

    The body starts around (0.5, ..., 0.5) with radius `size` [m]; the frames are exact.
    """
    check_int("count", count, 1)
    check_int("frames", frames, 2)
    check_int("dim", dim, 2, 3)
    rng = np.random.default_rng(seed)
    body = _ball(rng, count, dim) * size
    centre0 = 0.5 + rng.uniform(-0.05, 0.05, dim)
    vel = rng.normal(size=dim)
    vel *= speed / np.linalg.norm(vel)
    axis = rng.normal(size=3) if dim == 3 else None
    omega = spin * (1 if rng.random() < 0.5 else -1)
    pos = np.stack([centre0 + vel * t + body @ _rotation(dim, omega * t, axis).T for t in range(frames)])
    return Trajectory(positions=torch.from_numpy(pos.astype(np.float32)),
                      particle_type=torch.full((count,), material_type, dtype=torch.long),
                      material="rigid", attrs={"seed": seed, "speed": speed, "spin": spin})


def soft_particles(*, count: int = 300, frames: int = 60, dim: int = 2, seed: int = 0, spacing: float = 0.02,
                   substeps: int = 10, dt: float = 2.5e-4, gravity: float = 9.8, stiffness: float = 2e4,
                   damping: float = 2.0, material_type: int = 3, box: float = 1.0) -> Trajectory:
    """A block of soft particles dropped into a box with a random initial velocity.

    Pair forces within `2·spacing`: repulsion ``k (1 − d/h) n`` and damping of the normal
    relative velocity; walls push back with the same law. Unit mass, SI units; each stored
    frame is `substeps` steps of `dt` [s].
    """
    from scipy.spatial import cKDTree

    check_int("count", count, 2)
    check_int("frames", frames, 2)
    check_int("dim", dim, 2, 3)
    check_positive("spacing", spacing)
    rng = np.random.default_rng(seed)
    side = math.ceil(count ** (1.0 / dim))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * dim, indexing="ij"), -1).reshape(-1, dim)[:count]
    x = grid * spacing + rng.uniform(0.15, 0.85 - side * spacing, dim) * box
    x += rng.normal(scale=0.05 * spacing, size=x.shape)
    v = np.tile(rng.normal(scale=0.5, size=dim), (count, 1))
    h = 2.0 * spacing
    g = np.zeros(dim)
    g[1] = -gravity  # along −y, as in physim.mpm
    out = [x.copy()]
    for _ in range(frames - 1):
        for _ in range(substeps):
            f = np.tile(g, (count, 1)) - 0.1 * v
            pairs = cKDTree(x).query_pairs(h, output_type="ndarray")
            if len(pairs):
                i, j = pairs[:, 0], pairs[:, 1]
                d = x[i] - x[j]
                r = np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
                n = d / r
                vn = ((v[i] - v[j]) * n).sum(1, keepdims=True)
                fij = (stiffness * h * (1 - r / h) - damping * vn) * n
                np.add.at(f, i, fij)
                np.add.at(f, j, -fij)
            lo = x - 0.0
            hi = box - x
            f += stiffness * h * np.clip(1 - lo / (0.5 * h), 0, None) - stiffness * h * np.clip(1 - hi / (0.5 * h), 0,
                                                                                               None)
            v = v + dt * f
            x = x + dt * v
        out.append(x.copy())
    pos = np.stack(out)
    return Trajectory(positions=torch.from_numpy(pos.astype(np.float32)),
                      particle_type=torch.full((count,), material_type, dtype=torch.long),
                      material="soft", attrs={"seed": seed, "stiffness": stiffness, "damping": damping})
