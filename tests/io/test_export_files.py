"""Trajectory files: ROS 2 JointTrajectory-shaped CSV/JSON/YAML, read back and validated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physim.io.robots import FileFormatError, load_robot_profile
from physim.io.trajectory_file import Trajectory, load_trajectory, write_trajectory


def _traj():
    rng = np.random.default_rng(0)
    t = np.arange(6) * 0.002
    return Trajectory(["tool_x", "tool_z"], t, rng.normal(size=(6, 2)), rng.normal(size=(6, 2)),
                      rng.normal(size=(6, 2)), {"task": "x", "seed": 3}, "base")


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml"])
def test_write_then_load_is_exact(tmp_path, fmt):
    """Verify that every format round-trips names, times, positions, velocities, accelerations and metadata."""
    a = _traj()
    b = load_trajectory(write_trajectory(a, tmp_path / f"t.{fmt}"))
    assert b.joint_names == a.joint_names and b.frame_id == "base"
    np.testing.assert_allclose(b.times, a.times, atol=1e-9, rtol=0)
    for x, y in ((a.positions, b.positions), (a.velocities, b.velocities), (a.accelerations, b.accelerations)):
        np.testing.assert_array_equal(x, y)
    assert b.metadata["task"] == "x" and b.metadata["seed"] == 3


def test_json_is_shaped_like_a_ros2_joint_trajectory(tmp_path):
    """Verify the JSON layout: header.frame_id, joint_names, points with time_from_start {sec, nanosec}."""
    msg = json.loads(write_trajectory(_traj(), tmp_path / "t.json").read_text())
    assert msg["header"]["frame_id"] == "base" and msg["joint_names"] == ["tool_x", "tool_z"]
    p = msg["points"][3]
    assert set(p) == {"positions", "velocities", "accelerations", "effort", "time_from_start"}
    assert p["time_from_start"] == {"sec": 0, "nanosec": 6_000_000}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.json", "{not json", "not valid JSON"),
    ("a.json", json.dumps({"points": []}), "joint_names"),
    ("a.json", json.dumps({"joint_names": ["a"], "points": [
        {"positions": [0.0], "time_from_start": {"sec": 0, "nanosec": 0}},
        {"positions": [0.0, 1.0], "time_from_start": {"sec": 1, "nanosec": 0}}]}), "point 1: positions has 2"),
    ("a.json", json.dumps({"joint_names": ["a"], "points": [
        {"positions": [0.0], "time_from_start": {"sec": 1, "nanosec": 0}},
        {"positions": [1.0], "time_from_start": {"sec": 0, "nanosec": 0}}]}), "increase strictly"),
    ("a.yaml", "joint_names: [a, a]\npoints: []\n", "duplicates"),
    ("a.csv", "t,q.a\n0,0\n0.1,abc\n", "not a number"),
    ("a.csv", "time,q.a\n0,0\n0.1,1\n", "start with 't'"),
    ("a.txt", "whatever", "unknown suffix"),
])
def test_malformed_files_give_one_line_naming_the_file(tmp_path, name, text, message):
    """Verify that each kind of malformed trajectory file raises one error naming the file and the problem."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FileFormatError) as info:
        load_trajectory(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_malformed_robot_profile(tmp_path):
    """Verify errors for a missing trajectory file and for a profile with a negative or unknown limit."""
    with pytest.raises(FileFormatError, match="no such file"):
        load_trajectory(tmp_path / "none.csv")
    bad = tmp_path / "bot.yaml"
    bad.write_text("name: bot\nrate_hz: 100\ncartesian:\n  translation: {velocity: -1}\n")
    with pytest.raises(FileFormatError, match=r"cartesian.translation.velocity: -1 is not positive"):
        load_robot_profile(bad)
    bad.write_text("name: bot\nrate_hz: 100\nspeed: 3\n")
    with pytest.raises(FileFormatError, match="unknown key 'speed'"):
        load_robot_profile(bad)
