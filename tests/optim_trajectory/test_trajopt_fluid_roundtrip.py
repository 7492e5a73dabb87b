"""Sim-to-real round trip on a fluid task: `physim trajopt` → `physim export` → file → simulator replay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from physim.cli import main
from physim.io import load_trajectory
from physim.io.export import knots_from_export
from physim.optim.trajectory.tasks import make_task, replay_export, resolve_task_id

pytest.importorskip("physim.envs")

# Limits far above the dispenser's (±2.5 m/s, steps of 2 ms): this test is about the round
# trip, not about the limit check (tested with the chain tasks and the bundled profiles).
ROOMY = """name: roomy
rate_hz: 1000
cartesian:
  origin: [0.5, 0.0, 0.5]
  workspace: {x: [-1.0, 2.0], y: [-1.0, 1.0], z: [-1.0, 2.0]}
  translation: {velocity: 50.0, acceleration: 1.0e+6, jerk: 1.0e+10}
"""

STEPS = 6


def test_fluid_tasks_are_named_by_short_name():
    """Verify that `physim trajopt` accepts a fluid task by id, short name or lower-case name."""
    for name in ("physim/IceCreamStatic-v0", "IceCreamStatic-v0", "IceCreamStatic", "icecreamstatic"):
        assert resolve_task_id(name) == "physim/IceCreamStatic-v0"
    assert resolve_task_id("ChainThrow") == "physim/ChainThrow-v0"
    with pytest.raises(ValueError, match="task='IceCream'"):
        resolve_task_id("IceCream")  # two tasks start with it: ambiguous, never guessed


def test_hybrid_on_a_fluid_task_exports_and_replays_the_same_loss(tmp_path):
    """Verify hybrid trajopt on IceCreamStatic, export at 1 kHz (control rate 500 Hz), reload, replay.

    Tolerance: the file stores every number with 17 significant digits and the quintic
    resampling passes through the knots, so the replayed actions (knot differences / dt)
    match the optimised ones to ~1e-12 m/s, asserted below to 1e-9 m/s. The env simulates
    in float32: actions that round to the same float32 values replay bitwise the same loss;
    an action off by one float32 ulp (6e-8 relative) moves the loss by roughly that much
    relative. 1e-6 relative is ~16 such ulps, far inside the issue's 1 %.
    """
    out = tmp_path / "run"
    # A fixed gradient cost (measured: 15-25 forward calls on this scene on a loaded 2-core
    # CPU) keeps the run deterministic and short: hybrid's gradient probe, then sampling.
    assert main(["trajopt", "IceCreamStatic", "--method", "hybrid", "--budget", "40", "--steps", str(STEPS),
                 "--knots", "2", "--grad-cost", "8", "--out", str(out), "--no-video", "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == "physim/IceCreamStatic-v0"
    assert 0 < result["best_loss"] < result["initial_loss"]
    phases = [p["phase"] for p in result["info"]["phases"]]
    assert phases[0] == "gradient" and "sample" in phases, phases
    tool = json.loads((out / "tool_path.json").read_text())
    assert tool["task"] == "physim/IceCreamStatic-v0" and tool["steps"] == STEPS
    assert tool["env_settings"] == {"quality": "cpu"}

    profile = tmp_path / "roomy.yaml"
    profile.write_text(ROOMY)
    path = tmp_path / "ice_cream.csv"
    assert main(["export", str(out), "--robot", str(profile), "--rate", "1000", "--out", str(path)]) == 0
    traj = load_trajectory(path)
    assert traj.metadata["task"] == "physim/IceCreamStatic-v0" and traj.metadata["steps"] == STEPS
    assert len(traj.times) == 2 * STEPS + 1  # 12 ms at 1 kHz, both ends included

    best = torch.tensor(result["best_actions"], dtype=torch.float64)
    _, knots = knots_from_export(traj)
    np.testing.assert_allclose(knots, np.asarray(tool["positions"]), rtol=0, atol=1e-12)
    loss, actions = replay_export(path)
    assert float((actions - best).abs().max()) < 1e-9
    assert loss == pytest.approx(result["best_loss"], rel=1e-6)

    # The replay is a real simulation: the unoptimised (zero) actions give the initial loss instead.
    task = make_task("IceCreamStatic", steps=STEPS)
    assert task.problem.loss(torch.zeros_like(best)) == pytest.approx(result["initial_loss"], rel=1e-6)
