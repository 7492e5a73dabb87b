"""A quick look at particles: PNG frames, GIF and MP4 animations colored by material.

matplotlib draws each frame off-screen (Agg); imageio writes the files (GIF through
pillow, MP4 through PyAV). 3D scenes are drawn as a perspective scatter plot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from physim.io.atomic import atomic_path

__all__ = ["render_frame", "save_animation", "save_png"]


def _colors(material_id: np.ndarray) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return cmap(np.asarray(material_id) % 10)


def render_frame(x: np.ndarray, material_id: np.ndarray, domain: Sequence[float], *, names: Sequence[str] = (),
                 title: str = "", size: int = 480, max_points: int = 60000) -> np.ndarray:
    """Draw particles `x` [m] (N, d) colored by `material_id` (N,); returns an RGB image (size, size, 3) uint8."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    x = np.asarray(x)
    mid = np.asarray(material_id)
    if len(x) > max_points:  # draw a fixed subset: the picture is the same, the time is not
        sel = np.linspace(0, len(x) - 1, max_points).astype(int)
        x, mid = x[sel], mid[sel]
    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    dim = x.shape[1]
    c = _colors(mid)
    if dim == 2:
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
        ax.scatter(x[:, 0], x[:, 1], s=2, c=c, linewidths=0)
        ax.set_xlim(0, domain[0])
        ax.set_ylim(0, domain[1])
        ax.set_aspect("equal")
    else:
        ax = fig.add_axes((0.0, 0.0, 1.0, 0.92), projection="3d")
        # y is up in physim; matplotlib's 3D z is up
        ax.scatter(x[:, 0], x[:, 2], x[:, 1], s=1, c=c, linewidths=0, depthshade=True)
        ax.set_xlim(0, domain[0])
        ax.set_ylim(0, domain[2])
        ax.set_zlim(0, domain[1])
        ax.set_box_aspect((domain[0], domain[2], domain[1]))
        ax.view_init(elev=20, azim=-60)
    ax.set_xticks([])
    ax.set_yticks([])
    if dim == 3:
        ax.set_zticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    if names:
        handles = [Line2D([], [], marker="o", ls="", color=_colors(np.array([i]))[0], label=n)
                   for i, n in enumerate(names)]
        ax.legend(handles=handles, loc="upper right", fontsize=7, frameon=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write one RGB frame as PNG, atomically."""
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frame, extension=".png")
    return Path(path)


def save_animation(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 20.0) -> Path:
    """Write frames as a GIF or MP4 (by the suffix of `path`), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    frames = np.stack(frames)
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            # Pillow's GIF duration is in milliseconds per frame
            iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
        elif suffix == ".mp4":
            h, w = frames.shape[1:3]
            frames = frames[:, : h - h % 2, : w - w % 2]  # yuv420p needs even sizes
            iio.imwrite(tmp, frames, extension=".mp4", plugin="pyav", codec="libx264", fps=fps)
        elif suffix == ".png":
            iio.imwrite(tmp, frames[-1], extension=".png")
        else:
            from physim.errors import ConfigError

            raise ConfigError("video", str(path), "a path ending in .gif, .mp4 or .png")
    return path
