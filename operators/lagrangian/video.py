"""Side-by-side videos of predicted and ground-truth particle trajectories (GIF, matplotlib + Pillow)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["write_comparison_video"]


def write_comparison_video(path: str | os.PathLike, truth: torch.Tensor, prediction: torch.Tensor, *,
                           bounds=None, fps: int = 20, title: str = "", max_frames: int = 200,
                           point_size: float = 2.0) -> Path:
    """Write a GIF with ground truth (left) and prediction (right) for each step.

    Args:
        path: Destination ``.gif`` (written atomically).
        truth: Ground-truth positions [m], shape (steps, count, dim).
        prediction: Predicted positions [m], same shape (or another particle count, e.g. sparse).
        bounds: Domain box ((lo...), (hi...)) fixing the axes; default the data's extent.
        fps: Frames per second.
        title: Figure title (e.g. model and material).
        max_frames: Subsample longer rollouts to at most this many frames.
        point_size: Marker size.

    3-D positions are shown as a side view (x and y; gravity acts along −y).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from physim.io.atomic import atomic_path

    gt, pr = truth.detach().cpu().numpy(), prediction.detach().cpu().numpy()
    axes_idx = [0, 1]  # side view: gravity acts along −y (axis 1) in physim.mpm
    if bounds is None:
        both = np.concatenate([gt.reshape(-1, gt.shape[2]), pr.reshape(-1, pr.shape[2])])
        lo, hi = both.min(0), both.max(0)
    else:
        lo, hi = np.asarray(bounds[0], dtype=float), np.asarray(bounds[1], dtype=float)
    frames_idx = np.unique(np.linspace(0, gt.shape[0] - 1, min(max_frames, gt.shape[0])).astype(int))
    images = []
    fig, axs = plt.subplots(1, 2, figsize=(8, 4.2), dpi=80)
    for t in frames_idx:
        for ax, data, label in ((axs[0], gt, "ground truth"), (axs[1], pr, "prediction")):
            ax.clear()
            ax.scatter(data[t, :, axes_idx[0]], data[t, :, axes_idx[1]], s=point_size, c="tab:blue", linewidths=0)
            ax.set_xlim(lo[axes_idx[0]], hi[axes_idx[0]])
            ax.set_ylim(lo[axes_idx[1]], hi[axes_idx[1]])
            ax.set_aspect("equal")
            ax.set_title(f"{label}, step {t + 1}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(title, fontsize=10)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()))
    plt.close(fig)
    with atomic_path(path) as tmp:
        # Pillow's GIF duration is in milliseconds per frame.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Path(path)
