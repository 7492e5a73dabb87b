"""The fluid envs through `physim trajopt` and `physim export`: task, optimisation, tool path, round trip."""

from __future__ import annotations

import json

import physim.envs  # noqa: F401
import pytest
import torch

from physim.cli import main
from physim.io import load_trajectory
from physim.io.export import knots_from_export
from physim.optim.trajectory import optimize
from physim.optim.trajectory.tasks import list_tasks, make_task

ROOMY = """name: roomy
rate_hz: 500
cartesian:
  origin: [0.5, 0.0, 0.5]
  workspace: {x: [-1.0, 2.0], y: [-1.0, 1.0], z: [-1.0, 2.0]}
  translation: {velocity: 50.0, acceleration: 1.0e+6, jerk: 1.0e+10}
  rotation: {velocity: 50.0, acceleration: 1.0e+6, jerk: 1.0e+10}
"""


def test_fluid_ids_are_trajopt_tasks_with_export_axes():
    """Verify every fluid id is a trajopt task whose bounds, tool axes and tool path come from the env."""
    assert {"physim/Pouring-v0", "physim/GatheringO-v0"} <= set(list_tasks())
    task = make_task("physim/Pouring-v0", steps=3)
    assert task.problem.action_shape == (3, 3)
    assert float(task.problem.upper.max()) == 10.0
    assert task.axis_names == ("tool_x", "tool_z", "tool_pitch") and task.units == ("m", "m", "rad")
    a = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    times, pos = task.tool_path(a)
    assert times.shape == (4,) and pos.shape == (4, 3)
    torch.testing.assert_close(times[1], torch.tensor(2e-3, dtype=torch.float64))
    # scene x → tool_x, scene y (up) → tool_z, a turn about scene z → tool_pitch with the opposite sign
    torch.testing.assert_close(pos[-1], torch.tensor([1.5e-3 * 2, -1e-3 * 2, -2e-3 * 2], dtype=torch.float64))
    torch.testing.assert_close(task.actions_from_tool(pos), a)


def test_trajopt_and_export_round_trip_on_a_fluid_task(tmp_path):
    """Verify `physim trajopt` improves a short Pouring horizon, and its export replays to the same loss."""
    out = tmp_path / "run"
    assert main(["trajopt", "physim/Pouring-v0", "--method", "gradient", "--budget", "8", "--steps", "4",
                 "--grad-cost", "3", "--out", str(out), "--no-video", "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["best_loss"] <= result["initial_loss"]
    path = tmp_path / "roomy.yaml"
    path.write_text(ROOMY)
    traj_file = tmp_path / "traj.csv"
    assert main(["export", str(out), "--robot", str(path), "--out", str(traj_file)]) == 0
    _, knots = knots_from_export(load_trajectory(traj_file))
    task = make_task("physim/Pouring-v0", steps=4)
    replayed = task.problem.loss(task.actions_from_tool(torch.as_tensor(knots)))
    assert replayed == pytest.approx(result["best_loss"], rel=1e-4)


def test_gradient_descent_lowers_a_fluid_loss():
    """Verify a few Adam steps on rollout_loss lower LatteArt's loss from a perturbed start (short horizon)."""
    task = make_task("physim/LatteArt-v0", steps=8)
    env = task.extra["env"].unwrapped
    start = torch.as_tensor(env.demo_actions()[:8], dtype=torch.float64) + 2.0
    res = optimize(task.problem, start, "gradient", budget=12, seed=0, grad_cost=3.0)
    assert res.best_loss < 0.9 * res.initial_loss
