"""The shared training loop of physim's neural operators and learned materials.

One `Trainer` for every model: seeded data loading, optimizers by name (physim's
registry when present, else torch.optim), learning-rate schedules with warm-up,
gradient clipping, validation, early stopping, a wall-time budget, TensorBoard or CSV
logs, a progress bar, and atomic checkpoints from which an interrupted run resumes::

    cfg = TrainConfig(run_dir="runs/sfno", epochs=20, batch_size=8, lr=1e-3)
    result = Trainer(model, cfg, train_set, valid_set, loss_fn=loss, valid_fn=metrics).fit()

Run it again with the same `run_dir` and it continues from the last completed epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError, PhysimError
from physim.io.atomic import atomic_path, atomic_write_text

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingDiverged"]

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "linear", "cosine")
LOGGERS = ("tensorboard", "csv", "none")
# Fields that may change between a run and its resumption without invalidating the checkpoint.
_RESUMABLE_CHANGES = {"epochs", "max_wall_time", "progress", "early_stopping_patience", "log"}


class TrainingDiverged(PhysimError, FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one training run."""

    run_dir: Path = Path("runs/train")
    """Folder for checkpoint.pt, best.pt, config.json and logs."""
    epochs: int = 10
    """Passes over the training data."""
    batch_size: int = 16
    """Samples per optimizer step (datasets only; iterables of batches keep theirs)."""
    optimizer: str = "adam"
    """Optimizer name: physim.optim's registry when available, else a torch.optim class (case-insensitive)."""
    lr: float = 1e-3
    """Peak learning rate."""
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of the optimizer (betas, eps, ...)."""
    weight_decay: float = 0.0
    """Weight decay passed to the optimizer."""
    schedule: str = "linear"
    """Learning-rate schedule after warm-up: constant, linear (decay to 0) or cosine."""
    warmup_steps: int = 0
    """Optimizer steps of linear warm-up from 0 to `lr`."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None disables clipping."""
    max_wall_time: float | None = None
    """Stop (after saving a checkpoint) once this many seconds of training have passed."""
    early_stopping_patience: int | None = None
    """Stop after this many epochs without a better validation loss; None disables it."""
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many epochs (and always at the end)."""
    log: str = "tensorboard"
    """Metrics log: TensorBoard event files, a CSV file, or none."""
    seed: int = 0
    """Seed of parameters' initial state, shuffling and dropout."""
    progress: bool = True
    """Show a progress bar on a terminal (log lines otherwise)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        if not isinstance(self.optimizer, str) or not self.optimizer:
            raise ConfigError("optimizer", self.optimizer, "an optimizer name such as 'adam'")
        check_positive("lr", self.lr)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        if self.max_wall_time is not None:
            check_positive("max_wall_time", self.max_wall_time)
        if self.early_stopping_patience is not None:
            check_int("early_stopping_patience", self.early_stopping_patience, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_choice("log", self.log, LOGGERS)
        check_int("seed", self.seed, 0)
        try:
            json.dumps(self.optimizer_kwargs)
        except TypeError:
            raise ConfigError("optimizer_kwargs", self.optimizer_kwargs, "JSON-serialisable values") from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d


@dataclass(frozen=True)
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes:
        history: One dict per completed epoch: epoch, train_loss, lr, seconds, and the
            validation metrics.
        best_epoch: Epoch with the lowest validation loss (the last epoch without validation).
        best_valid_loss: That loss (None without validation).
        checkpoint_path: The resumable checkpoint.
        best_model_path: Weights of the best epoch.
        wall_time: Seconds spent training in this call and the calls it resumed.
        stopped_early: Why training ended before `epochs`, or None.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_valid_loss: float | None
    checkpoint_path: Path
    best_model_path: Path
    wall_time: float
    stopped_early: str | None = None


LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]
ValidFn = Callable[[nn.Module, Any], dict[str, float]]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        out = [_to_device(v, device) for v in batch]
        return type(batch)(out) if isinstance(batch, list) or type(batch) is tuple else type(batch)(*out)
    return batch


def _make_optimizer(name: str, params, lr: float, weight_decay: float, kwargs: dict[str, Any]):
    """Build an optimizer by name; returns (optimizer, needs_hessian)."""
    try:
        from physim.optim import make_optimizer, optimizer_info
    except ImportError:
        make_optimizer = optimizer_info = None
    if make_optimizer is not None:
        opt = make_optimizer(name, params, lr=lr, weight_decay=weight_decay, **kwargs)
        return opt, bool(getattr(optimizer_info(name), "needs_hessian", False))
    classes = {k.lower(): v for k, v in vars(torch.optim).items()
               if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer}
    cls = classes.get(name.lower())
    if cls is None:
        raise ConfigError("optimizer", name, "one of " + ", ".join(sorted(classes)))
    return cls(params, lr=lr, weight_decay=weight_decay, **kwargs), False


def _lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class _MetricsLog:
    """TensorBoard event files or a CSV file (rewritten atomically each epoch), or nothing."""

    def __init__(self, kind: str, run_dir: Path):
        self.kind, self.run_dir, self.writer = kind, run_dir, None
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed; writing metrics.csv instead")
                self.kind = "csv"
            else:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, history: list[dict[str, float]]) -> None:
        if self.kind == "tensorboard" and self.writer is not None:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()
        elif self.kind == "csv":
            keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
            atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Trainer:
    """Train `model` on `train_data` with `loss_fn`; see the module docstring.

    Args:
        model: The network (any `nn.Module`; `OperatorBase` models also save `best.pt`
            loadable by `physim.operators.load`).
        cfg: Run settings.
        train_data: A torch `Dataset` (batched here, shuffled with the run's seed) or any
            re-iterable collection of ready batches.
        valid_data: Same kinds, optional.
        loss_fn: ``loss_fn(model, batch) -> loss`` or ``-> (loss, {"name": value})``.
        valid_fn: ``valid_fn(model, batch) -> {"valid_loss": ..., ...}`` averaged over
            batches (default: ``{"valid_loss": loss_fn(model, batch)}``); ``valid_loss``
            drives early stopping and the best checkpoint.
        collate_fn: Passed to the DataLoader.
        callbacks: Objects with optional ``on_batch_end(trainer, step, loss)`` and
            ``on_epoch_end(trainer, epoch, metrics)`` methods.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        train_data: Any,
        valid_data: Any = None,
        *,
        loss_fn: LossFn,
        valid_fn: ValidFn | None = None,
        collate_fn: Callable | None = None,
        callbacks: Sequence[Any] = (),
        device: torch.device | str | None = None,
    ):
        from physim.runtime import device as default_device

        self.cfg = cfg
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.train_data, self.valid_data = train_data, valid_data
        self.loss_fn, self.valid_fn = loss_fn, valid_fn
        self.collate_fn = collate_fn
        self.callbacks = list(callbacks)
        self.batch_size = cfg.batch_size
        self.global_step = 0
        torch.manual_seed(cfg.seed)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("model", type(model).__name__, "a model with trainable parameters")
        self.optimizer, self.needs_hessian = _make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay,
                                                             dict(cfg.optimizer_kwargs))
        self._steps_per_epoch = self._count_batches(train_data)
        total = cfg.epochs * self._steps_per_epoch if self._steps_per_epoch else cfg.epochs * 1000
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(cfg.schedule, cfg.warmup_steps, total))

    # -- data --------------------------------------------------------------------------------
    def _is_dataset(self, data: Any) -> bool:
        return isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__")

    def _count_batches(self, data: Any) -> int | None:
        if self._is_dataset(data):
            return math.ceil(len(data) / self.batch_size)
        return len(data) if hasattr(data, "__len__") else None

    def _batches(self, data: Any, epoch: int, shuffle: bool) -> Iterable[Any]:
        if self._is_dataset(data):
            gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
            return torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                                               collate_fn=self.collate_fn)
        return data

    def set_batch_size(self, n: int) -> None:
        """Change the batch size from the next epoch on (adaptive batch-size schemes)."""
        check_int("batch_size", n, 1)
        self.batch_size = n

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.cfg.run_dir / "checkpoint.pt"

    @property
    def best_model_path(self) -> Path:
        return self.cfg.run_dir / "best.pt"

    def _save_checkpoint(self, epoch: int, history, best, wall: float) -> None:
        state = {
            "epoch": epoch,
            "global_step": self.global_step,
            "batch_size": self.batch_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": history,
            "best": best,
            "wall_time": wall,
            "config": self.cfg.to_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def _save_best(self) -> None:
        from physim.operators.base import OperatorBase

        if isinstance(self.model, OperatorBase) and type(self.model).operator_name:
            self.model.save(self.best_model_path)
        else:
            with atomic_path(self.best_model_path) as tmp:
                torch.save({"state_dict": self.model.state_dict()}, tmp)

    def _load_checkpoint(self):
        path = self.checkpoint_path
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise ConfigError("run_dir", str(self.cfg.run_dir),
                              f"a readable checkpoint.pt ({type(exc).__name__} reading {path}); "
                              "remove it to start afresh") from None
        saved = state.get("config", {})
        now = self.cfg.to_dict()
        changed = sorted(k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k])
        if changed:
            raise ConfigError("run_dir", str(self.cfg.run_dir),
                              f"a run with the same settings (checkpoint differs in {', '.join(changed)}); "
                              "use another run_dir or remove checkpoint.pt")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = state["global_step"]
        self.batch_size = state["batch_size"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        return state["epoch"], state["history"], state["best"], state["wall_time"]

    # -- training ----------------------------------------------------------------------------
    def _loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.loss_fn(self.model, batch)
        loss, extra = (out if isinstance(out, tuple) else (out, {}))
        if loss.dim() != 0:
            raise ValueError(f"loss_fn returned a tensor of shape {tuple(loss.shape)}: expected a scalar")
        return loss, dict(extra)

    def _validate(self) -> dict[str, float]:
        if self.valid_data is None:
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        with torch.no_grad():
            for batch in self._batches(self.valid_data, 0, shuffle=False):
                batch = _to_device(batch, self.device)
                if self.valid_fn is not None:
                    metrics = self.valid_fn(self.model, batch)
                else:
                    metrics = {"valid_loss": float(self._loss(batch)[0])}
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        self.model.train()
        return {k: v / max(count, 1) for k, v in sums.items()}

    def fit(self) -> TrainResult:
        """Train until `epochs`, early stopping or the wall-time budget; resume if a checkpoint exists."""
        cfg = self.cfg
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        start_epoch, history, best, wall_before = 0, [], {"epoch": -1, "loss": None}, 0.0
        if self.checkpoint_path.exists():
            start_epoch, history, best, wall_before = self._load_checkpoint()
            log.info("resuming %s from epoch %d", cfg.run_dir, start_epoch)
        atomic_write_text(cfg.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        metrics_log = _MetricsLog(cfg.log, cfg.run_dir)
        bar = _Bar(cfg.progress and sys.stderr.isatty(), cfg.epochs, start_epoch)
        t0 = time.perf_counter()
        stopped: str | None = None
        epoch = start_epoch
        self.model.train()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t_epoch = time.perf_counter()
                total, n = 0.0, 0
                extras: dict[str, float] = {}
                for batch in self._batches(self.train_data, epoch, shuffle=True):
                    batch = _to_device(batch, self.device)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss, extra = self._loss(batch)
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(f"training loss is {float(loss.detach())} at epoch {epoch}, "
                                               f"step {self.global_step}: lower lr or enable grad_clip")
                    loss.backward(create_graph=self.needs_hessian)
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.global_step += 1
                    total += float(loss.detach())
                    n += 1
                    for k, v in extra.items():
                        extras[k] = extras.get(k, 0.0) + float(v)
                    for cb in self.callbacks:
                        if hasattr(cb, "on_batch_end"):
                            cb.on_batch_end(self, self.global_step, float(loss.detach()))
                    if cfg.max_wall_time is not None and wall_before + time.perf_counter() - t0 > cfg.max_wall_time:
                        stopped = "max_wall_time"
                        break
                if n == 0:
                    raise ConfigError("train_data", type(self.train_data).__name__, "at least one batch")
                row = {"epoch": epoch, "train_loss": total / n, "lr": self.optimizer.param_groups[0]["lr"],
                       "seconds": time.perf_counter() - t_epoch, **{k: v / n for k, v in extras.items()}}
                row.update(self._validate())
                history.append(row)
                score = row.get("valid_loss", row["train_loss"])
                if best["loss"] is None or score < best["loss"]:
                    best = {"epoch": epoch, "loss": score}
                    self._save_best()
                metrics_log.write(history)
                for cb in self.callbacks:
                    if hasattr(cb, "on_epoch_end"):
                        cb.on_epoch_end(self, epoch, row)
                bar.update(row)
                patience = cfg.early_stopping_patience
                if stopped is None and patience is not None and epoch - best["epoch"] >= patience:
                    stopped = "early_stopping"
                last = stopped is not None or epoch == cfg.epochs - 1
                if last or (epoch + 1 - start_epoch) % cfg.checkpoint_every == 0:
                    self._save_checkpoint(epoch + 1, history, best, wall_before + time.perf_counter() - t0)
                if stopped is not None:
                    break
        finally:
            bar.close()
            metrics_log.close()
        return TrainResult(
            history=history,
            best_epoch=best["epoch"],
            best_valid_loss=best["loss"] if self.valid_data is not None else None,
            checkpoint_path=self.checkpoint_path,
            best_model_path=self.best_model_path,
            wall_time=wall_before + time.perf_counter() - t0,
            stopped_early=stopped,
        )


class _Bar:
    """Epoch progress bar (rich) on a terminal, log lines otherwise."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.description}"))
            self.progress.start()
            self.task = self.progress.add_task("", total=total, completed=done)

    def update(self, row: dict[str, float]) -> None:
        text = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds", "lr"))
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=text)
        else:
            log.info("epoch %d: %s", int(row["epoch"]), text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
