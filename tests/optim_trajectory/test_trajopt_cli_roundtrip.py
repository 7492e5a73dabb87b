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


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrajoptConfig(task="physim/ChainThrow-v0", method="hybrid", budget=14, steps=12, out=out, knots=4,
                        grad_cost=2.5, progress=False)
    result = run_trajopt(cfg)
    return cfg, result


def test_run_folder_holds_config_result_plot_video_and_tool_path(run):
    """Verify the run folder: resolved config with a repeat command, result, tool path, loss plot and video."""
    cfg, result = run
    out = cfg.out
    for name in ("config.json", "result.json", "tool_path.json", "loss.png", "best.gif", "calls.pt"):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("physim trajopt physim/ChainThrow-v0 --method hybrid --budget 14")
    assert config["grad_cost"] == 2.5 and "--grad-cost 2.5" in config["command"]
    saved = json.loads((out / "result.json").read_text())
    assert saved["best_loss"] == result.best_loss < saved["initial_loss"]
    assert len(saved["best_actions"]) == 12


def test_rerunning_the_same_command_replays_the_log(run):
    """Verify that starting the same run again replays every logged call and gives the same result."""
    cfg, result = run
    again = run_trajopt(replace(cfg, video=False), progress=False)
    assert again.info["replayed_calls"] == len(result.history)
    assert again.best_loss == result.best_loss


@pytest.mark.parametrize(("fmt", "rate"), [("yaml", 125), ("csv", 1000), ("json", 500)])
def test_exported_file_replayed_in_the_simulator_reproduces_the_loss(run, tmp_path, fmt, rate):
    """Verify the round trip: export → load_trajectory → tool positions at the control steps → replay loss within 1%."""
    from physim.optim.trajectory.tasks import make_task

    cfg, result = run
    profile = tmp_path / "roomy.yaml"
    profile.write_text(ROOMY)
    out = tmp_path / f"traj.{fmt}"
    assert main(["export", str(cfg.out), "--format", fmt, "--rate", str(rate), "--robot", str(profile),
                 "--out", str(out)]) == 0
    traj = load_trajectory(out)
    assert traj.metadata["task"] == "physim/ChainThrow-v0" and traj.metadata["rate_hz"] == rate
    assert traj.metadata["seed"] == 0 and traj.metadata["physim_version"]
    _, knots = knots_from_export(traj)
    task = make_task("physim/ChainThrow-v0", steps=12)
    replayed = task.problem.loss(task.actions_from_tool(torch.as_tensor(knots)))
    assert replayed == pytest.approx(result.best_loss, rel=1e-2)


def test_export_refuses_a_too_fast_trajectory_and_scale_time_fits_it(run, tmp_path, capsys):
    """Verify that the Franka profile refuses the raw trajectory (exit 2, one line) and --scale-time exports it."""
    cfg, _ = run
    out = tmp_path / "franka.csv"
    assert main(["export", str(cfg.out), "--robot", "franka_panda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("physim: error: trajectory refused by robot profile 'franka_panda'")
    assert not out.exists()
    assert main(["export", str(cfg.out), "--robot", "franka_panda", "--out", str(out), "--scale-time"]) == 0
    assert load_trajectory(out).metadata["time_scale"] > 1


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
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--rate", "-5"])


def test_trajopt_bad_input(capsys):
    """Verify that an unknown task and an unknown method are refused with a clear message."""
    assert main(["trajopt", "physim/NoSuchTask-v0", "--budget", "5"]) == 2
    assert "task='physim/NoSuchTask-v0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["trajopt", "physim/ChainTrack-v0", "--method", "newton"])
