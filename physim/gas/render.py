"""Quick-look pictures of the gas grid: a PNG of one slice, a GIF of a rollout.

Both draw a 2D grid as it is and a 3D grid as one slice through it (FluidLab's
Circulation looks at the horizontal slab y ≈ 0.5: ``axis=1``), color the smoke, the
speed, the vorticity or the pressure, draw the in-plane velocity as arrows and solid
cells in gray, and write the file atomically. matplotlib and imageio are imported
only when a picture is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from physim.config import check_choice
from physim.errors import ConfigError
from physim.gas.config import GasState
from physim.gas.geometry import cell_velocity
from physim.io.atomic import atomic_path

__all__ = ["QUANTITIES", "render_gif", "render_slice", "slice_frame"]

QUANTITIES = ("smoke", "speed", "vorticity", "pressure")
_CMAPS = {"smoke": "magma", "speed": "viridis", "vorticity": "RdBu_r", "pressure": "coolwarm"}


def _plane(t: torch.Tensor, dim: int, axis: int, index: int) -> np.ndarray:
    """Slice `t` (cells first) at `index` along `axis` when the grid is 3D."""
    t = t.detach().cpu()
    if dim == 3:
        t = t.select(axis, index)
    return t.numpy()


def _field(state: GasState, quantity: str, channel: int, h: float, dim: int, axis: int, index: int):
    """The colored scalar and the in-plane cell velocity of a slice, both (n0, n1[, 2])."""
    vc = cell_velocity(state.velocity.detach())
    in_plane = [d for d in range(dim) if d != axis] if dim == 3 else [0, 1]
    uv = _plane(vc[..., in_plane], dim, axis, index)
    if quantity == "smoke":
        if not 0 <= channel < state.smoke.shape[-1]:
            raise ConfigError("channel", channel, f"a smoke channel in [0, {state.smoke.shape[-1] - 1}]")
        values = _plane(state.smoke[..., channel], dim, axis, index)
    elif quantity == "speed":
        values = np.linalg.norm(uv, axis=-1)
    elif quantity == "pressure":
        values = _plane(state.pressure, dim, axis, index)
    else:  # vorticity of the in-plane components, ∂v/∂x − ∂u/∂y, by central differences
        values = np.gradient(uv[..., 1], h, axis=0) - np.gradient(uv[..., 0], h, axis=1)
    return values, uv


def _check(state: GasState, quantity: str, axis: int | None, index: int | None) -> tuple[int, int, int]:
    if not isinstance(state, GasState):
        raise ConfigError("state", type(state).__name__, "a physim.gas.GasState")
    check_choice("quantity", quantity, QUANTITIES)
    res = tuple(state.smoke.shape[:-1])
    dim = len(res)
    axis = dim - 1 if axis is None else axis
    if dim == 3 and axis not in (0, 1, 2):
        raise ConfigError("axis", axis, "0, 1 or 2")
    n = res[axis] if dim == 3 else 1
    index = n // 2 if index is None else index
    if dim == 3 and not 0 <= index < n:
        raise ConfigError("index", index, f"a cell index in [0, {n - 1}] along axis {axis}")
    return dim, axis, index


def slice_frame(state: GasState, *, sim=None, quantity: str = "smoke", axis: int | None = None,
                index: int | None = None, channel: int = 0, vmin: float | None = None, vmax: float | None = None,
                arrows: bool = True, title: str | None = None, dpi: int = 100) -> np.ndarray:
    """Draw one slice of a state and return it as an RGB image, uint8 array of shape (H, W, 3).

    Args:
        state: The state to draw.
        sim: The `GasSimulator` it came from (optional): gives the axes in meters and the solids.
        quantity: ``"smoke"`` (channel `channel`), ``"speed"`` [m/s], ``"vorticity"`` [1/s]
            or ``"pressure"`` (the projection potential [m²/s]).
        axis, index: For a 3D grid, the slice is cell `index` along `axis` (default: the
            middle of the last axis).
        vmin, vmax: Color range (default: the slice's own; fix it for animations).
        arrows: Draw the in-plane velocity.
        title: Title above the picture.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    dim, axis, index = _check(state, quantity, axis, index)
    h = float(sim.cfg.cell_size) if sim is not None else 1.0
    values, uv = _field(state, quantity, channel, h, dim, axis, index)
    names = "xyz"
    plane_axes = [d for d in range(dim) if d != axis] if dim == 3 else [0, 1]
    extent = (0, values.shape[0] * h, 0, values.shape[1] * h)
    if quantity == "vorticity" and vmin is None and vmax is None:
        m = float(np.abs(values).max()) or 1.0
        vmin, vmax = -m, m
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=dpi)
    try:
        im = ax.imshow(values.T, origin="lower", extent=extent, cmap=_CMAPS[quantity], vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.85, label=quantity + (f" [{channel}]" if quantity == "smoke" else ""))
        if sim is not None and bool(sim.solid.any()):
            solid = _plane(sim.solid, dim, axis, index).astype(float)
            ax.imshow(np.ma.masked_where(solid.T == 0, solid.T), origin="lower", extent=extent, cmap="Greys",
                      vmin=0, vmax=1.5, interpolation="nearest")
        if arrows and float(np.abs(uv).max()) > 0:  # quiver cannot scale an all-zero field
            step = max(1, max(values.shape) // 16)
            xs = (np.arange(values.shape[0]) + 0.5) * h
            ys = (np.arange(values.shape[1]) + 0.5) * h
            X, Y = np.meshgrid(xs[::step], ys[::step], indexing="ij")
            ax.quiver(X, Y, uv[::step, ::step, 0], uv[::step, ::step, 1], color="white", alpha=0.7,
                      angles="xy", pivot="mid")
        unit = " [m]" if sim is not None else " [cells]"
        ax.set_xlabel(names[plane_axes[0]] + unit)
        ax.set_ylabel(names[plane_axes[1]] + unit)
        label = title or (f"t = {float(state.time):.3f} s" + (f", {names[axis]} cell {index}" if dim == 3 else ""))
        ax.set_title(label)
        fig.tight_layout()
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    finally:
        plt.close(fig)
    return image


def render_slice(state: GasState, path: str | os.PathLike, **kwargs) -> Path:
    """Write `slice_frame(state, **kwargs)` to a PNG file atomically and return its path."""
    import imageio.v3 as iio

    path = Path(path)
    image = slice_frame(state, **kwargs)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, image, extension=path.suffix or ".png")
    return path


def render_gif(states: Sequence[GasState], path: str | os.PathLike, *, fps: float = 15.0, **kwargs) -> Path:
    """Write an animation of `states` (GIF, or MP4 where imageio has a video plugin) atomically.

    The color range is shared by all frames (the extremes over the sequence) unless
    `vmin`/`vmax` are given. Other keywords as in `slice_frame`.
    """
    import imageio.v3 as iio

    if not states:
        raise ConfigError("states", "[]", "at least one state")
    if not fps > 0:
        raise ConfigError("fps", fps, "a positive number of frames per second")
    path = Path(path)
    quantity = kwargs.get("quantity", "smoke")
    if "vmin" not in kwargs and "vmax" not in kwargs and quantity != "vorticity":
        dim, axis, index = _check(states[0], quantity, kwargs.get("axis"), kwargs.get("index"))
        h = float(kwargs["sim"].cfg.cell_size) if kwargs.get("sim") is not None else 1.0
        values = [_field(s, quantity, kwargs.get("channel", 0), h, dim, axis, index)[0] for s in states]
        kwargs = {**kwargs, "vmin": float(min(v.min() for v in values)), "vmax": float(max(v.max() for v in values))}
    frames = np.stack([slice_frame(s, **kwargs) for s in states])
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            # Pillow's GIF writer takes the frame duration in milliseconds (imageio#870).
            iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            iio.imwrite(tmp, frames, extension=path.suffix, fps=fps)
    return path
