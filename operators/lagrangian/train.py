"""Training GNS and GIOROM with physim's shared training loop.

    from physim.operators.lagrangian.train import train_lagrangian
    result = train_lagrangian(model, train_trajs, valid_trajs, TrainConfig(run_dir="runs/gns", epochs=20))

One-step losses on windows of the training trajectories (`model.training_loss`), and
validation by short rollouts: ``valid_loss`` is the mean position MSE [m²] of a
`valid_steps`-step rollout from the start of each validation trajectory (dense, decoded,
for GIOROM), so the best checkpoint is the one that rolls out best.
"""

from __future__ import annotations

from collections.abc import Sequence

from physim.config import check_int

from ..training import TrainConfig, Trainer, TrainResult
from .dataset import Trajectory
from .evaluate import rollout_one
from .model import LagrangianModel
from .windows import WindowDataset, collate_windows

__all__ = ["TrainConfig", "train_lagrangian"]


def train_lagrangian(model: LagrangianModel, train: Sequence[Trajectory], valid: Sequence[Trajectory] | None,
                     cfg: TrainConfig, *, frame_stride: int = 1, window_stride: int = 1, valid_steps: int = 20,
                     valid_trajectories: int = 4, callbacks: Sequence = ()) -> TrainResult:
    """Fit the normalisation (unless already fitted) and train `model` with `Trainer`.

    Args:
        model: A GNS or GIOROM model.
        train: Training trajectories.
        valid: Validation trajectories (the first `valid_trajectories` are rolled out each epoch), or None.
        cfg: Settings of the shared loop (run folder, epochs, batch size, optimizer, wall-time budget ...).
        frame_stride: Stored frames per model step.
        window_stride: Model steps between training windows.
        valid_steps: Rollout length of the validation.
        valid_trajectories: Validation trajectories used.
        callbacks: Passed to `Trainer`.
    """
    check_int("valid_steps", valid_steps, 1)
    check_int("valid_trajectories", valid_trajectories, 1)
    if not bool(model.normalizer.fitted):
        model.fit_statistics(train, frame_stride=frame_stride)
    data = WindowDataset(train, history=model.history, frame_stride=frame_stride, window_stride=window_stride)
    # A plain list: the Trainer hands each trajectory to valid_fn as one 'batch'.
    valid_data = list(valid)[:valid_trajectories] if valid else None

    def loss_fn(m, batch):
        return m.training_loss(batch)

    def valid_fn(m, traj):
        result = rollout_one(m, traj, steps=valid_steps, frame_stride=frame_stride)
        return {"valid_loss": result.mse}

    trainer = Trainer(model, cfg, data, valid_data, loss_fn=loss_fn, valid_fn=valid_fn, collate_fn=collate_windows,
                      callbacks=callbacks)
    return trainer.fit()

