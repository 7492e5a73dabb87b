"""`physim trajopt` run folders, `physim export`, and the round trip file → simulator replay."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from physim.cli import main
from physim.io import load_trajectory
from physim.io.export import knots_from_export
from physim.optim.trajectory.run import TrajoptConfig, run_trajopt

ROOMY = """name: roomy
rate_hz: 1000
cartesian:
  origin: [0.5, 0.0, 0.5]
  workspace: {x: [-1.0, 2.0], z: [-1.0, 2.0]}
  translation: {velocity: 50.0, acceleration: 1.0e+5, jerk: 1.0e+9}
"""


def test_run_folder_export_and_round_trip(tmp_path, capsys):
    """Verify a trajopt run folder, its resume, and the export round trip file → simulator replay within 1 %.

    One test on purpose: the optimisation it exports is the expensive part, and under
    pytest-xdist a shared fixture would be rebuilt in every worker.
    """
    from physim.optim.trajectory.tasks import make_task

    out = tmp_path / "run"
    cfg = TrajoptConfig(task="physim/ChainThrow-v0", method="hybrid", budget=14, steps=12, out=out, knots=4,
                        grad_cost=2.5, progress=False)
    result = run_trajopt(cfg)

    # The run folder: resolved config with the repeat command, result, tool path, plot, video, call log.
    for name in ("config.json", "result.json", "tool_path.json", "loss.png", "best.gif", "calls.pt"):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("physim trajopt physim/ChainThrow-v0 --method hybrid --budget 14")
    assert config["grad_cost"] == 2.5 and "--grad-cost 2.5" in config["command"]
    saved = json.loads((out / "result.json").read_text())
    assert saved["best_loss"] == result.best_loss < saved["initial_loss"]
    assert len(saved["best_actions"]) == 12

    # Starting the same run again replays every logged call and gives the same result.
    again = run_trajopt(replace(cfg, video=False), progress=False)
    assert again.info["replayed_calls"] == len(result.history) and again.best_loss == result.best_loss

    # Round trip at three rates and formats: export → load → tool positions at the control steps → replay.
    profile = tmp_path / "roomy.yaml"
    profile.write_text(ROOMY)
    task = make_task("physim/ChainThrow-v0", steps=12)
    for fmt, rate in (("yaml", 125), ("csv", 1000), ("json", 500)):
        path = tmp_path / f"traj.{fmt}"
        assert main(["export", str(out), "--format", fmt, "--rate", str(rate), "--robot", str(profile),
                     "--out", str(path)]) == 0
        traj = load_trajectory(path)
        assert traj.metadata["task"] == "physim/ChainThrow-v0" and traj.metadata["rate_hz"] == rate
        assert traj.metadata["seed"] == 0 and traj.metadata["physim_version"]
        _, knots = knots_from_export(traj)
        replayed = task.problem.loss(task.actions_from_tool(torch.as_tensor(knots)))
        assert replayed == pytest.approx(result.best_loss, rel=1e-2), fmt

    # The Franka profile refuses the raw (too fast) trajectory with one line; --scale-time exports it.
    franka = tmp_path / "franka.csv"
    capsys.readouterr()
    assert main(["export", str(out), "--robot", "franka_panda", "--out", str(franka)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("physim: error: trajectory refused by robot profile 'franka_panda'")
    assert not franka.exists()
    assert main(["export", str(out), "--robot", "franka_panda", "--out", str(franka), "--scale-time"]) == 0
    assert load_trajectory(franka).metadata["time_scale"] > 1


def test_export_bad_input(tmp_path, capsys):
    """Verify one error line for a folder without a result and for an unknown robot profile."""
    assert main(["export", str(tmp_path)]) == 2
    assert "no optimisation result" in capsys.readouterr().err
    (tmp_path / "tool_path.json").write_text(json.dumps({"axis_names": ["tool_x"], "times": [0, 1],
                                                         "positions": [[0.0]]}))
    assert main(["export", str(tmp_path)]) == 2
    assert "positions must be finite with shape (2, 1)" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--robot", "nao"]) == 2
    assert "robot='nao'" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--rate", "-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("physim: error: rate=-5.0 is invalid")


def test_trajopt_bad_input(capsys):
    """Verify that an unknown task and an unknown method are refused with a clear message."""
    assert main(["trajopt", "physim/NoSuchTask-v0", "--budget", "5"]) == 2
    assert "task='physim/NoSuchTask-v0'" in capsys.readouterr().err
    assert main(["trajopt", "physim/ChainTrack-v0", "--method", "newton"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "method='newton' is invalid" in err[0]
