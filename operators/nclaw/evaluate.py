"""Generalisation of learned materials to scenes never seen in training.

Each case is simulated from its initial state (no teacher forcing) with the learned
material(s) and compared with the ground-truth trajectory of the same scene. The
metric is the mean particle position error over the rollout relative to the
ground-truth displacement:

    error = mean_{t,p} |x_pred(t, p) − x_gt(t, p)|  /  mean_{t,p} |x_gt(t, p) − x_gt(0, p)|

(t = 1..T, over every particle of every body). A rollout that diverges, or a learned law
too stiff for the scene's time step, is reported as ``inf`` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from physim.operators.nclaw.data import Trajectory
from physim.operators.nclaw.scenes import SceneSpec, make_simulator

from physim.errors import ConfigError, SimulationDiverged

__all__ = ["CaseResult", "evaluate_case", "relative_error"]


@dataclass(frozen=True)
class CaseResult:
    """Error of one model on one case.

    Attributes:
        error: Relative mean position error (inf when the rollout failed).
        note: Why it failed, or "".
        x: Predicted positions [m], shape (T, N, d), or None.
    """

    error: float
    note: str = ""
    x: torch.Tensor | None = None


def relative_error(x_pred: torch.Tensor, x_gt: torch.Tensor) -> float:
    """Mean |x_pred − x_gt| over steps 1..T and particles, divided by the mean ground-truth displacement.

    Args:
        x_pred: Predicted positions [m], shape (T, N, d).
        x_gt: Ground-truth positions [m] including the initial state, shape (T+1, N, d).
    """
    if x_gt.shape[0] != x_pred.shape[0] + 1 or x_gt.shape[1:] != x_pred.shape[1:]:
        raise ConfigError("x_pred", tuple(x_pred.shape), f"shape {(x_gt.shape[0] - 1, *x_gt.shape[1:])}")
    err = (x_pred.double() - x_gt[1:].double()).norm(dim=-1).mean()
    disp = (x_gt[1:].double() - x_gt[:1].double()).norm(dim=-1).mean()
    return float(err / disp)


def evaluate_case(case: str, spec: SceneSpec, materials: dict, gt: Trajectory) -> CaseResult:
    """Roll out `case` with `materials` ({"main": ..., "partner": ...}) and compare with `gt`."""
    try:
        sim = make_simulator(case, spec, materials)
        if sim.particle_count != gt.x.shape[1]:
            raise ConfigError("gt", tuple(gt.x.shape),
                              f"a trajectory of the {case} scene ({sim.particle_count} particles)")
        with torch.no_grad():
            out = sim.rollout(sim.reset(), steps=gt.steps, observe=lambda t, s: s.x, checkpoint_every=None)
    except SimulationDiverged as exc:
        return CaseResult(math.inf, f"diverged: {exc}")
    except ConfigError as exc:
        if exc.field != "dt":
            raise
        return CaseResult(math.inf, f"unstable: {exc}")
    x = out.observations.cpu()
    return CaseResult(relative_error(x, gt.x), "", x)
