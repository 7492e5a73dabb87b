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

SCHEDULES = ("constant", "linear", "cosine", "refined")
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
    """Learning-rate schedule after warm-up: constant, linear (decay to 0), cosine, or refined
    (from the gradient norms of the earlier run in `refine_from`; see physim.optim.schedules)."""
    refine_from: Path | None = None
    """For schedule="refined": the run_dir of an earlier run of the same problem (its grad_norms.json)."""
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
        if self.refine_from is not None:
            object.__setattr__(self, "refine_from", Path(self.refine_from))
        if self.schedule == "refined" and self.refine_from is None:
            raise ConfigError("refine_from", None, "the run_dir of an earlier run for schedule='refined'")
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
        d["refine_from"] = None if self.refine_from is None else str(self.refine_from)
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
    """Build an optimizer through physim.optim's registry; returns (optimizer, OptimizerInfo)."""
    from physim.optim import make_optimizer, optimizer_info

    info = optimizer_info(name)
    if weight_decay:  # passed only when set: some optimizers (CBO) have no weight decay
        kwargs = {**kwargs, "weight_decay": weight_decay}
    return make_optimizer(name, params, lr=lr, **kwargs), info


def _read_grad_norms(run_dir: Path, form: str) -> list[float]:
    """The per-step gradient norms an earlier run wrote to grad_norms.json (validated)."""
    path = Path(run_dir) / "grad_norms.json"
    key = "l1" if form == "adam" else "l2"
    try:
        data = json.loads(path.read_text())
        values = [float(v) for v in data[key]]
    except FileNotFoundError:
        raise ConfigError("refine_from", str(run_dir), f"a run_dir containing grad_norms.json ({path} is missing)") \
            from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("refine_from", str(run_dir),
                          f"a valid grad_norms.json ({path}: {type(exc).__name__}: {exc})") from None
    return values


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
        self.optimizer, self.optimizer_info = _make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay,
                                                              dict(cfg.optimizer_kwargs))
        self.needs_hessian = self.optimizer_info.needs_hessian
        self.grad_norms: dict[str, list[float]] = {"l1": [], "l2": []}
        self._pending_norms: list[torch.Tensor] = []
        self._graph_checked = False
        self._steps_per_epoch = self._count_batches(train_data)
        total = cfg.epochs * self._steps_per_epoch if self._steps_per_epoch else cfg.epochs * 1000
        from physim.optim.schedules import make_scheduler, refined_form, refined_schedule

        refined = None
        if cfg.schedule == "refined":
            form = refined_form(self.optimizer_info.name)
            refined = refined_schedule(_read_grad_norms(cfg.refine_from, form), total_steps=max(2, total), form=form)
        self.scheduler = make_scheduler(self.optimizer, cfg.schedule, total, warmup_steps=cfg.warmup_steps,
                                        refined=refined)

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

    def to_device(self, batch: Any) -> Any:
        """`batch` (tensors, or dicts/lists/tuples of them) moved to the training device."""
        return _to_device(batch, self.device)

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

    def _flush_grad_norms(self) -> None:
        if self._pending_norms:
            values = torch.stack(self._pending_norms).cpu().tolist()
            self.grad_norms["l2"] += [v[0] for v in values]
            self.grad_norms["l1"] += [v[1] for v in values]
            self._pending_norms = []

    def _save_checkpoint(self, epoch: int, history, best, wall: float) -> None:
        self._flush_grad_norms()
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
            "grad_norms": self.grad_norms,
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)
        if self.grad_norms["l2"]:  # the trace a later schedule="refined" run is built from
            atomic_write_text(self.cfg.run_dir / "grad_norms.json", json.dumps(self.grad_norms))

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
        self.grad_norms = state.get("grad_norms", {"l1": [], "l2": []})
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

    def _check_twice_differentiable(self, loss: torch.Tensor) -> None:
        from physim.autodiff import first_order_only_ops

        ops = first_order_only_ops(loss)
        if ops:
            raise ConfigError(
                "optimizer", self.cfg.optimizer,
                f"an optimizer without Hessian-vector products: {self.optimizer_info.name} needs "
                f"backward(create_graph=True), but the loss flows through {', '.join(ops)}, which has no second "
                "derivatives; choose a first-order optimizer such as 'adam' or train on a pure-torch loss",
            )
        self._graph_checked = True

    def _train_step(self, batch: Any, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimizer step on `batch`; returns the (detached) loss and extra metrics."""
        cfg, info = self.cfg, self.optimizer_info

        def diverged(loss: torch.Tensor) -> TrainingDiverged:
            return TrainingDiverged(f"training loss is {float(loss.detach())} at epoch {epoch}, "
                                    f"step {self.global_step}: lower lr or enable grad_clip")

        if info.zeroth_order:
            # Values only: the optimizer evaluates the closure at perturbed parameters, no backward.
            # Its return value (MeZO: mean of the perturbed losses; CBO: best loss) is what gets logged.
            def value_closure() -> torch.Tensor:
                with torch.no_grad():
                    return self._loss(batch)[0]

            loss = torch.as_tensor(float(self.optimizer.step(value_closure)))
            if not torch.isfinite(loss):
                raise diverged(loss)
            return loss, {}
        self.optimizer.zero_grad(set_to_none=True)
        loss, extra = self._loss(batch)
        if not torch.isfinite(loss):
            raise diverged(loss)
        if self.needs_hessian and not self._graph_checked:
            self._check_twice_differentiable(loss)
        loss.backward(create_graph=self.needs_hessian)
        grads = [p.grad.detach() for p in self.model.parameters() if p.grad is not None]
        if grads:  # kept as tensors: converting here would synchronise a GPU every step
            self._pending_norms.append(torch.stack([
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])),
                sum(g.abs().sum() for g in grads)]))
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if info.needs_closure:  # e.g. L-BFGS re-evaluates loss and gradient itself
            def grad_closure() -> torch.Tensor:
                self.optimizer.zero_grad(set_to_none=True)
                value, _ = self._loss(batch)
                value.backward()
                return value

            self.optimizer.step(grad_closure)
        else:
            self.optimizer.step()
        if self.needs_hessian:
            # create_graph=True leaves grads that reference the graph; drop them so it is freed.
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach(), extra

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
                    loss, extra = self._train_step(batch, epoch)
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
