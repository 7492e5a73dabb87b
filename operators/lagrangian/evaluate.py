"""Rollout evaluation of learned particle simulators against ground-truth trajectories."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from physim.config import check_int

from .dataset import Trajectory
from .model import LagrangianModel

__all__ = ["RolloutResult", "evaluate_rollouts", "rollout_one", "summarize"]


@dataclass
class RolloutResult:
    """One predicted trajectory compared with the ground truth.

    Attributes:
        name: Trajectory name.
        material: Its material.
        steps: Predicted model steps.
        mse_per_step: Mean squared position error [m²] of each step, over particles and axes.
        mse: Mean of `mse_per_step` [m²].
        seconds_per_step: Wall time per model step (stepping, plus decoding for GIOROM).
        step_seconds: Wall time per model step spent in the stepper alone.
        particle_count: Dense particles compared.
        sparse_count: Particles stepped (GIOROM's sparse set; the dense count for GNS).
        prediction: Predicted positions (steps, count, dim) when kept, else None.
        truth: Ground-truth positions (steps, count, dim) when kept, else None.
    """

    name: str
    material: str
    steps: int
    mse_per_step: list[float]
    mse: float
    seconds_per_step: float
    step_seconds: float
    particle_count: int
    sparse_count: int
    prediction: torch.Tensor | None = field(default=None, repr=False)
    truth: torch.Tensor | None = field(default=None, repr=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def rollout_one(model: LagrangianModel, traj: Trajectory, *, steps: int | None = None, frame_stride: int = 1,
                keep: bool = False, device: torch.device | str | None = None) -> RolloutResult:
    """Roll `model` out from the first `history` model steps of `traj` and compare every later step.

    GIOROM models step their sparse set and decode every step at all particles' reference
    (first-frame) positions; other models step all particles.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    pos = traj.positions[::frame_stride].to(device)
    available = pos.shape[0] - model.history
    steps = available if steps is None else min(steps, available)
    check_int("steps", steps, 1)
    history = pos[: model.history].transpose(0, 1).to(next(model.parameters()).dtype)
    ptype = traj.particle_type.to(device)
    truth = pos[model.history: model.history + steps]
    _sync(device)
    t0 = time.perf_counter()
    if hasattr(model, "decoder_plan"):  # a reduced-order model (GIOROM): sparse stepping, dense decoding
        reference = traj.positions[0].to(device).to(history.dtype)
        idx = model.sample_sparse(reference, generator=torch.Generator().manual_seed(0))
        sparse = model.rollout(history[idx], ptype[idx], steps)
        _sync(device)
        t_step = time.perf_counter() - t0
        plan = model.decoder_plan(reference[idx], reference)
        pred = torch.stack([reference + model.decoder(reference[idx], s - reference[idx], reference, plan=plan)
                            for s in sparse])
        sparse_count = int(idx.numel())
    else:
        pred = model.rollout(history, ptype, steps)
        _sync(device)
        t_step = time.perf_counter() - t0
        sparse_count = pos.shape[1]
    _sync(device)
    total = time.perf_counter() - t0
    err = ((pred.float() - truth.float()) ** 2).mean(dim=(1, 2))
    return RolloutResult(name=traj.name, material=traj.material, steps=steps, mse_per_step=err.tolist(),
                         mse=float(err.mean()), seconds_per_step=total / steps, step_seconds=t_step / steps,
                         particle_count=pos.shape[1], sparse_count=sparse_count,
                         prediction=pred.cpu() if keep else None, truth=truth.cpu() if keep else None)


def evaluate_rollouts(model: LagrangianModel, trajectories: Sequence[Trajectory], *, steps: int | None = None,
                      frame_stride: int = 1, keep: bool = False, progress: bool = True) -> list[RolloutResult]:
    """`rollout_one` on every trajectory, with a progress bar."""
    from tqdm.auto import tqdm

    return [rollout_one(model, t, steps=steps, frame_stride=frame_stride, keep=keep)
            for t in tqdm(trajectories, desc="rollouts", disable=not progress, leave=False)]


def summarize(results: Sequence[RolloutResult]) -> dict[str, dict[str, float]]:
    """Per material (and ``"all"``): mean rollout MSE [m²], seconds per step, trajectory count."""
    groups: dict[str, list[RolloutResult]] = {}
    for r in results:
        groups.setdefault(r.material, []).append(r)
    groups["all"] = list(results)
    return {m: {"mse": sum(r.mse for r in rs) / len(rs),
                "seconds_per_step": sum(r.seconds_per_step for r in rs) / len(rs),
                "step_seconds": sum(r.step_seconds for r in rs) / len(rs),
                "trajectories": len(rs)} for m, rs in groups.items()}
