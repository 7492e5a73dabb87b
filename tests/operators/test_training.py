"""Verify the shared training loop: learning, determinism across a crash and resume, and its stops and errors."""

from __future__ import annotations

import csv

import pytest
import torch
from physim.operators.training import TrainConfig, Trainer, TrainingDiverged
from torch import nn

from physim.errors import ConfigError


def _data(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return torch.utils.data.TensorDataset(x, x @ w + 0.3)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _cfg(tmp_path, **kw):
    base = {"run_dir": tmp_path, "epochs": 6, "batch_size": 8, "lr": 1e-2, "log": "csv", "progress": False}
    return TrainConfig(**{**base, **kw})


def test_training_lowers_the_loss_and_logs(tmp_path):
    """Verify that fifteen epochs lower the validation loss tenfold and write config, CSV log and weights."""
    trainer = Trainer(_model(), _cfg(tmp_path, lr=0.05, epochs=15), _data(), _data(32, seed=1), loss_fn=mse)
    result = trainer.fit()
    first, last = result.history[0]["valid_loss"], result.history[-1]["valid_loss"]
    assert last < 0.1 * first
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "metrics.csv", "checkpoint.pt", "best.pt"}
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) == 15 and float(rows[-1]["valid_loss"]) == pytest.approx(last)
    assert result.history[-1]["lr"] < 0.2 * 0.05  # linear decay towards zero


class _Crash:
    def on_epoch_end(self, trainer, epoch, metrics):
        if epoch == 3:
            raise KeyboardInterrupt


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path):
    """Verify that a run killed after epoch 3 and resumed ends with the same weights as one run straight through."""
    straight = Trainer(_model(), _cfg(tmp_path / "a"), _data(), loss_fn=mse)
    straight.fit()
    crashed = Trainer(_model(), _cfg(tmp_path / "b"), _data(), loss_fn=mse, callbacks=[_Crash()])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    resumed = Trainer(_model(seed=5), _cfg(tmp_path / "b"), _data(), loss_fn=mse)
    result = resumed.fit()
    assert [h["epoch"] for h in result.history] == list(range(6))
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_resume_refuses_a_changed_config(tmp_path):
    """Verify that resuming with different settings is refused, naming what changed."""
    Trainer(_model(), _cfg(tmp_path, epochs=1), _data(), loss_fn=mse).fit()
    with pytest.raises(ConfigError, match="differs in lr"):
        Trainer(_model(), _cfg(tmp_path, epochs=2, lr=0.5), _data(), loss_fn=mse).fit()


def test_early_stopping_and_wall_time(tmp_path):
    """Verify early stopping on a validation loss that never improves, and the wall-time budget."""
    def flat_valid(model, batch):
        return {"valid_loss": 1.0}

    r = Trainer(_model(), _cfg(tmp_path / "es", epochs=20, early_stopping_patience=2), _data(), _data(8),
                loss_fn=mse, valid_fn=flat_valid).fit()
    assert r.stopped_early == "early_stopping" and len(r.history) == 3 and r.best_epoch == 0
    r = Trainer(_model(), _cfg(tmp_path / "wt", epochs=1000, max_wall_time=0.3), _data(), loss_fn=mse).fit()
    assert r.stopped_early == "max_wall_time" and len(r.history) < 1000


def test_divergence_and_bad_settings(tmp_path):
    """Verify that a NaN loss stops training with a clear error and bad settings are refused."""
    def nan_loss(model, batch):
        return mse(model, batch) * float("nan")

    with pytest.raises(TrainingDiverged, match="training loss is nan at epoch 0, step 0"):
        Trainer(_model(), _cfg(tmp_path), _data(), loss_fn=nan_loss).fit()
    with pytest.raises(ConfigError, match="optimizer='nosuch' is invalid"):
        Trainer(_model(), _cfg(tmp_path, optimizer="nosuch"), _data(), loss_fn=mse)
    with pytest.raises(ValueError, match="lr=-1.0 is invalid"):
        _cfg(tmp_path, lr=-1.0)
    with pytest.raises(ValueError, match="schedule='step' is invalid"):
        _cfg(tmp_path, schedule="step")
