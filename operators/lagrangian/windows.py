"""Training samples cut from trajectories: a position history plus the frames to predict."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from physim.config import check_int
from physim.errors import ConfigError

from .dataset import Trajectory

__all__ = ["WindowDataset", "collate_windows"]


class WindowDataset(torch.utils.data.Dataset):
    """Every window of ``history + horizon`` consecutive model steps of every trajectory.

    Args:
        trajectories: The trajectories.
        history: Input frames (GNS and GIOROM use 6: five velocities).
        horizon: Frames to predict after the history (1 for one-step training).
        frame_stride: Stored frames per model step (2 trains a model stepping every other frame).
        window_stride: Start a window every this many model steps.

    Items are dicts: ``positions`` (count, history + horizon, dim) [m], ``particle_type``
    (count,), ``reference`` (count, dim) [m] (the trajectory's first frame) and ``trajectory``
    (index into `trajectories`).
    """

    def __init__(self, trajectories: Sequence[Trajectory], *, history: int = 6, horizon: int = 1,
                 frame_stride: int = 1, window_stride: int = 1):
        check_int("history", history, 2)
        check_int("horizon", horizon, 1)
        check_int("frame_stride", frame_stride, 1)
        check_int("window_stride", window_stride, 1)
        self.trajectories = list(trajectories)
        self.history, self.horizon, self.frame_stride = history, horizon, frame_stride
        span = history + horizon
        self.index: list[tuple[int, int]] = []
        for i, traj in enumerate(self.trajectories):
            steps = (traj.frame_count - 1) // frame_stride + 1
            self.index += [(i, s) for s in range(0, steps - span + 1, window_stride)]
        if not self.index:
            raise ConfigError("trajectories", f"{len(self.trajectories)} trajectories",
                              f"at least one with {span} model steps ({(span - 1) * frame_stride + 1} frames)")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        i, s = self.index[item]
        traj = self.trajectories[i]
        frames = slice(s * self.frame_stride, (s + self.history + self.horizon - 1) * self.frame_stride + 1,
                       self.frame_stride)
        return {
            "positions": traj.positions[frames].transpose(0, 1),
            "particle_type": traj.particle_type,
            "reference": traj.positions[0],
            "trajectory": torch.tensor(i),
        }


def collate_windows(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate windows of different particle counts into one disjoint graph batch, with
    ``batch`` (count,) giving each particle's window."""
    out = {key: torch.cat([it[key] for it in items]) for key in ("positions", "particle_type", "reference")}
    sizes = torch.tensor([it["positions"].shape[0] for it in items])
    out["batch"] = torch.repeat_interleave(torch.arange(len(items)), sizes)
    out["trajectory"] = torch.stack([it["trajectory"] for it in items])
    return out
