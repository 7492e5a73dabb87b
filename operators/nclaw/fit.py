"""Learning a material from one trajectory through physim.mpm, with a growing teacher-forcing window.

The loss is the mean squared particle-position error [in units of dx²] over the
trajectory. Teacher forcing: the trajectory is cut into windows of λ control steps,
each window starts from the observed state (x, v, C, F) and is rolled out by the
simulator with the learned law; λ grows from `window_min` to the full horizon on a
cosine schedule and the last `full_fraction` of the epochs are full rollouts from the
initial state. One epoch is one optimizer step on the whole trajectory (all windows),
run by the shared `physim.operators.training.Trainer` (Adam from physim's optimizer
registry when present, cosine learning rate, gradient clipping, atomic resumable
checkpoints, CSV log). Validation is the full rollout without teacher forcing, so the
best checkpoint is the law that reproduces the whole trajectory best.

Variants (all trained the same way, in the same script):

- ``invariant``: NCLaw with `InvariantElasticLaw` + `NeuralPlasticity`;
- ``e3nn``: NCLaw with `E3nnElasticLaw` + `NeuralPlasticity`;
- ``mlp``: the no-prior baseline, `PlainMLPStress` + `PlainMLPPlasticity`;
- ``analytic``: system identification, the ground truth's analytic law with its
  parameters (E, ν, yield stress, friction angle, bulk modulus, viscosity) fitted.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from physim.operators.nclaw.data import Trajectory
from physim.operators.nclaw.law import NeuralConstitutiveLaw, load_law
from physim.operators.nclaw.scenes import (
    MATERIALS,
    SceneSpec,
    analytic_material,
    guess_moduli,
    initial_guess,
    make_simulator,
)
from torch import nn

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError, SimulationDiverged
from physim.io.atomic import atomic_path, atomic_write_text

__all__ = [
    "FIT_PARAMS",
    "VARIANTS",
    "AnalyticFit",
    "FitConfig",
    "FitResult",
    "build_model",
    "describe_history",
    "fit",
    "load_model",
    "model_material",
    "window_loss",
]

VARIANTS = ("invariant", "e3nn", "mlp", "analytic")
FIT_PARAMS = {
    "jelly": ("E", "nu"),
    "plasticine": ("E", "nu", "yield_stress"),
    "sand": ("E", "nu", "friction_angle"),
    "water": ("bulk_modulus", "viscosity"),
}
"""Parameters the system-identification baseline fits, per material."""

log = logging.getLogger(__name__)

_NU_MAX = 0.45
_PHI_MAX = 60.0


class AnalyticFit(nn.Module):
    """System-identification baseline: an analytic law's parameters in an unconstrained form.

    Moduli, yield stress and viscosity are ``guess · exp(θ)``; Poisson's ratio is
    ``0.45 tanh(θ)``; the friction angle is ``60° · sigmoid(θ)``. θ starts at the guess.
    """

    def __init__(self, material: str):
        super().__init__()
        check_choice("material", material, MATERIALS)
        self.material_name = material
        self.guess = initial_guess(material)
        self.raw = nn.ParameterDict()
        for k in FIT_PARAMS[material]:
            g = self.guess[k]
            if k == "nu":
                start = math.atanh(g / _NU_MAX)
            elif k == "friction_angle":
                start = math.log(g / (_PHI_MAX - g))
            else:
                start = 0.0
            self.raw[k] = nn.Parameter(torch.tensor(start))

    def values(self) -> dict[str, torch.Tensor]:
        """Current parameter values (differentiable scalars)."""
        out = {}
        for k, t in self.raw.items():
            if k == "nu":
                out[k] = _NU_MAX * torch.tanh(t)
            elif k == "friction_angle":
                out[k] = _PHI_MAX * torch.sigmoid(t)
            else:
                out[k] = self.guess[k] * torch.exp(t)
        return out

    def material(self):
        """The analytic material with the current values."""
        return analytic_material(self.material_name, {k: float(v.detach()) for k, v in self.values().items()})

    def apply_to(self, sim, body: str = "main") -> None:
        """Route the current (differentiable) values into `sim.params` for the next rollout."""
        for k, v in self.values().items():
            sim.params[f"{body}.{k}"] = v.to(sim.dtype)


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """Training settings of one model on one trajectory.

    Attributes:
        variant: ``invariant``, ``e3nn``, ``mlp`` or ``analytic``.
        epochs: Optimizer steps (one per pass over the trajectory).
        lr: Peak learning rate; None: 1e-2 for networks, 0.1 for the analytic parameters.
        window_min: Shortest teacher-forcing window [control steps].
        full_fraction: Fraction of the epochs, at the end, trained on full rollouts.
        grad_clip: Gradient-norm clip.
        checkpoint_every: Rollout checkpoint interval K [control steps]: store every K-th state
            and recompute in backward (memory O(K) steps' graph instead of the window's); 0 keeps
            the whole window's graph, no recomputation (fastest; the default, since the
            benchmark's scenes are small: set K for scenes of many particles or long windows).
        width: Hidden width of the networks.
        depth: Hidden layers of the networks.
        seed: Seed of the initial weights.
        progress: Progress bar on a terminal.
        snapshot_every: Save the model of every this many epochs as ``snapshots/epoch_NNNN.pt``
            in the run folder (the current weights, not the best; for error-vs-training-length
            studies); 0 saves none.
    """

    variant: str = "invariant"
    epochs: int = 40
    lr: float | None = None
    window_min: int = 5
    full_fraction: float = 0.25
    grad_clip: float = 1.0
    checkpoint_every: int = 0
    width: int = 64
    depth: int = 2
    seed: int = 0
    progress: bool = True
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_int("epochs", self.epochs, 1)
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_int("window_min", self.window_min, 1)
        check_range("full_fraction", self.full_fraction, 0.0, 1.0)
        check_positive("grad_clip", self.grad_clip)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_int("width", self.width, 1)
        check_int("depth", self.depth, 1)
        check_int("seed", self.seed, 0)
        check_int("snapshot_every", self.snapshot_every, 0)

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 if self.variant == "analytic" else 1e-2


@dataclass(frozen=True)
class FitResult:
    """What `fit` returns.

    Attributes:
        model: The best model (by full-rollout loss on the training trajectory).
        history: Per-epoch metrics (train_loss, valid_loss, window, lr, seconds).
        wall_time: Training time [s] (all resumed runs together).
        path: The saved model: a learned-law file (networks) or fitted.json (analytic).
        stopped: Why training ended early (the simulation diverged), or None.
    """

    model: nn.Module
    history: list[dict[str, float]]
    wall_time: float
    path: Path
    stopped: str | None = None


def _density(material: str) -> float:
    return float(analytic_material(material, {}).density)


def build_model(variant: str, material: str, spec: SceneSpec, *, width: int = 64, depth: int = 2) -> nn.Module:
    """A fresh, untrained model of `variant` for `material` (linear skeleton at the initial guess)."""
    check_choice("variant", variant, VARIANTS)
    if variant == "analytic":
        return AnalyticFit(material)
    E0, nu0 = guess_moduli(material)
    elastic_kw = {"dim": spec.dim, "youngs_modulus": E0, "poisson_ratio": nu0, "depth": depth}
    if variant == "e3nn":
        elastic = {"name": "nclaw-e3nn", "kwargs": {**elastic_kw, "scalars": width // 4, "tensors": width // 8}}
    else:
        elastic = {"name": "nclaw-invariant" if variant == "invariant" else "nclaw-mlp",
                   "kwargs": {**elastic_kw, "width": width}}
    plastic = {"name": "nclaw-mlp-plastic" if variant == "mlp" else "nclaw-plastic",
               "kwargs": {"dim": spec.dim, "width": width, "depth": depth}}
    return NeuralConstitutiveLaw(elastic=elastic, plastic=plastic, density=_density(material), label=material)


def load_model(path: str | Path, material: str, variant: str) -> nn.Module:
    """A model saved by `fit`: a learned-law file (the networks) or a `{"state_dict": ...}` file of the
    analytic fit (its best.pt or a snapshot). A damaged analytic file is one `ConfigError` naming it."""
    if variant != "analytic":
        return load_law(path)
    model = AnalyticFit(material)
    try:
        model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    except Exception as exc:
        raise ConfigError("model file", str(path), f"a saved analytic fit of {material} ({exc})") from None
    return model


def model_material(model: nn.Module, *, wave_speed_bound: float | None = None):
    """The physim.mpm material of a model (a NeuralMaterial, or the fitted analytic law)."""
    if isinstance(model, AnalyticFit):
        return model.material()
    if not isinstance(model, NeuralConstitutiveLaw):
        raise ConfigError("model", type(model).__name__, "a NeuralConstitutiveLaw or an AnalyticFit")
    bound = model.wave_speed_bound(safety=1.0) if wave_speed_bound is None else wave_speed_bound
    return model.material(wave_speed_bound=bound)


class _Windows:
    """The Trainer's training data: one batch per epoch, carrying that epoch's window length."""

    def __init__(self, steps: int, epochs: int, window_min: int, full_fraction: float):
        self.steps, self.epochs = steps, epochs
        self.window_min = min(window_min, steps)
        self.ramp = max(1, round(epochs * (1.0 - full_fraction)))
        self.trainer = None

    def window(self, epoch: int) -> int:
        if epoch >= self.ramp - 1:
            return self.steps
        u = 0.5 * (1.0 - math.cos(math.pi * epoch / max(1, self.ramp - 1)))
        return round(self.window_min + u * (self.steps - self.window_min))

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        # One optimizer step per epoch, so the restored global step is the epoch on resumption.
        yield {"window": self.window(self.trainer.global_step)}


def window_loss(sim, model: nn.Module, traj: Trajectory, window: int, checkpoint_every: int = 0) -> torch.Tensor:
    """Mean squared position error [dx²] of windowed rollouts restarted from the observed states.

    `checkpoint_every` K > 0 checkpoints each window's rollout every K control steps (and
    recomputes in backward); 0 keeps each window's whole graph. The gradients agree up to
    floating-point summation order.
    """
    if isinstance(model, AnalyticFit):
        model.apply_to(sim)
    T = traj.steps
    dx2 = sim.cfg.spacing ** 2
    gt = traj.x.to(device=sim.device, dtype=sim.dtype)
    total, count = 0.0, 0
    for t0 in range(0, T, window):
        n = min(window, T - t0)
        out = sim.rollout(traj.state(t0, sim), steps=n, observe=lambda t, s: s.x,
                          checkpoint_every=min(checkpoint_every, n) if checkpoint_every else None)
        total = total + ((out.observations - gt[t0 + 1 : t0 + n + 1]) ** 2).sum(-1).mean() * n / dx2
        count += n
    return total / count


class _Snapshots:
    """Trainer callback: the model after every `every`-th epoch, saved as ``folder/epoch_NNNN.pt``.

    Networks are saved as learned-law files, the analytic fit as its state dict (as best.pt).
    """

    def __init__(self, folder: Path, every: int):
        self.folder, self.every = Path(folder), every

    def on_epoch_end(self, trainer, epoch: int, row: dict[str, float]) -> None:
        if (epoch + 1) % self.every:
            return
        path = self.folder / f"epoch_{epoch + 1:04d}.pt"
        self.folder.mkdir(parents=True, exist_ok=True)
        if isinstance(trainer.model, NeuralConstitutiveLaw):
            trainer.model.save(path)
        else:
            with atomic_path(path) as tmp:
                torch.save({"state_dict": trainer.model.state_dict()}, tmp)


def fit(material: str, traj: Trajectory, spec: SceneSpec, cfg: FitConfig, run_dir: str | Path) -> FitResult:
    """Train `cfg.variant` on `material`'s one trajectory `traj`; resumes from `run_dir` if interrupted.

    Raises:
        ConfigError: the trajectory does not match the training scene of `spec`.
    """
    from physim.operators.training import TrainConfig, Trainer

    run_dir = Path(run_dir)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.variant, material, spec, width=cfg.width, depth=cfg.depth)
    sim = make_simulator("train", spec, {"main": model_material(model)})
    if tuple(traj.x.shape[1:]) != (sim.particle_count, spec.dim) or traj.steps != spec.steps:
        raise ConfigError("trajectory", tuple(traj.x.shape),
                          f"the training scene of this spec: ({spec.steps + 1}, {sim.particle_count}, {spec.dim})")
    if not torch.allclose(traj.x[0].to(sim.dtype), sim.reset().x.cpu(), atol=1e-6):
        raise ConfigError("trajectory", "x[0]", "the particles of this spec's training scene")
    windows = _Windows(spec.steps, cfg.epochs, cfg.window_min, cfg.full_fraction)

    def loss_fn(m, batch):
        return window_loss(sim, m, traj, batch["window"], cfg.checkpoint_every), {"window": batch["window"]}

    def valid_fn(m, batch):
        return {"valid_loss": float(window_loss(sim, m, traj, spec.steps, cfg.checkpoint_every))}

    tcfg = TrainConfig(run_dir=run_dir, epochs=cfg.epochs, batch_size=1, optimizer="adam", lr=cfg.learning_rate,
                       schedule="cosine", grad_clip=cfg.grad_clip, log="csv", seed=cfg.seed, progress=cfg.progress)
    callbacks = [_Snapshots(run_dir / "snapshots", cfg.snapshot_every)] if cfg.snapshot_every else []
    trainer = Trainer(model, tcfg, windows, [{"window": spec.steps}], loss_fn=loss_fn, valid_fn=valid_fn,
                      device=sim.device, callbacks=callbacks)
    windows.trainer = trainer
    stopped = None
    t0 = time.perf_counter()
    try:
        result = trainer.fit()
        history, wall = result.history, result.wall_time
    except SimulationDiverged as exc:
        # A law without priors can drive the simulation unstable; keep the best epoch so far and
        # report it (an unconstrained plastic MLP can amplify strain until particles fly off).
        stopped = f"simulation diverged in epoch {trainer.global_step}: {exc}"
        log.warning("%s: %s", run_dir, stopped)
        saved = torch.load(trainer.checkpoint_path, weights_only=False) if trainer.checkpoint_path.exists() else {}
        history = saved.get("history", [])
        wall = saved.get("wall_time", 0.0) + time.perf_counter() - t0
    best_path = trainer.best_model_path
    if isinstance(model, NeuralConstitutiveLaw):
        best = load_law(best_path) if best_path.exists() else model
        path = best.save(run_dir / "law.pt")
    else:
        if best_path.exists():
            model.load_state_dict(torch.load(best_path, weights_only=True)["state_dict"])
        best = model
        values = {k: float(v.detach()) for k, v in model.values().items()}
        path = run_dir / "fitted.json"
        atomic_write_text(path, json.dumps({"material": material, "fitted": values,
                                            "initial_guess": model.guess}, indent=2))
    return FitResult(model=best, history=history, wall_time=wall, path=path, stopped=stopped)


def describe_history(history: list[dict[str, Any]]) -> str:
    """One line per epoch: epoch, window, train and validation losses."""
    return "\n".join(f"epoch {int(r['epoch'])}: window {int(r.get('window', 0))} train {r['train_loss']:.4g} "
                     f"full-rollout {r.get('valid_loss', float('nan')):.4g}" for r in history)

