"""Export: spline resampling to controller rates, limit checks that refuse and report, retiming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physim.errors import ConfigError
from physim.io.export import TrajectoryLimitError, check_limits, export_trajectory, knots_from_export
from physim.io.resample import fit_spline, resample
from physim.io.robots import MotionLimits, RobotProfile, load_robot_profile
from physim.io.trajectory_file import load_trajectory

DT = 0.01


def _knots(n=21, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT
    y = np.cumsum(rng.normal(scale=0.002, size=(n, 2)), axis=0)
    y[0] = 0.0
    return t, y


@pytest.mark.parametrize("kind", ["quintic", "cubic"])
@pytest.mark.parametrize("rate", [1000, 500, 100])
def test_resampling_preserves_knot_positions(kind, rate):
    """Verify that samples falling on knots reproduce the knot positions to 1e-9, and the ends are at rest."""
    t, y = _knots()
    res = resample(t, y, rate, kind=kind)
    step = round(rate * DT)
    assert res.times[::step].shape[0] == t.shape[0]
    np.testing.assert_allclose(res.positions[::step], y, atol=1e-9, rtol=0)
    np.testing.assert_allclose(fit_spline(t, y, kind=kind)(t), y, atol=1e-12, rtol=0)
    assert np.abs(res.velocities[[0, -1]]).max() < 1e-9
    if kind == "quintic":
        assert np.abs(res.accelerations[[0, -1]]).max() < 1e-6


def test_resampling_at_a_rate_off_the_knot_grid_ends_at_rest_after_the_last_knot():
    """Verify 125 Hz sampling of 10 ms knots: ticks at j/125 s, the last at or after the last knot, holding it."""
    t, y = _knots()
    res = resample(t, y, 125)
    assert np.allclose(np.diff(res.times), 1 / 125)
    assert res.times[-1] >= t[-1] > res.times[-2]
    np.testing.assert_allclose(res.positions[-1], y[-1], atol=1e-12)
    assert np.all(res.velocities[-1] == 0)


def _box_profile(**kw):
    return RobotProfile(name="box", rate_hz=1000.0, workspace={"x": (-0.3, 0.3), "z": (-0.3, 0.3)},
                        translation=MotionLimits(**kw))


def test_workspace_violation_is_reported_at_the_right_sample():
    """Verify that a knot outside the workspace is refused with its sample index, axis, value and limit."""
    t = np.arange(21) * DT
    y = np.zeros((21, 2))
    y[12, 0] = 0.5  # tool_x leaves the box [-0.3, 0.3] at knot 12 only
    res = resample(t, y, 1000)
    violations = check_limits(res, ["tool_x", "tool_z"], _box_profile())
    assert violations and {v.axis for v in violations} == {"tool_x"}
    at_knot = [v for v in violations if v.index == 120]
    assert at_knot and at_knot[0].value == pytest.approx(0.5, abs=1e-9) and at_knot[0].limit == 0.3
    assert at_knot[0].time == pytest.approx(0.12) and at_knot[0].quantity == "position"
    idx = [v.index for v in violations]
    assert min(idx) > 110 and max(idx) < 130  # only the neighbourhood of knot 12


def test_limit_violation_refuses_and_never_clips(tmp_path):
    """Verify that a too-fast trajectory is refused: no file, a report listing every violation, a clear message."""
    t = np.arange(11) * DT
    y = np.stack([np.linspace(0, 0.2, 11), np.zeros(11)], axis=1)  # 2 m/s
    profile = _box_profile(velocity=1.0)
    out = tmp_path / "traj.csv"
    with pytest.raises(TrajectoryLimitError) as info:
        export_trajectory(t, y, ["tool_x", "tool_z"], out, robot=profile, rate=1000)
    assert not out.exists()
    err = info.value
    assert "velocity of translation" in str(err) and "--scale-time" in str(err)
    report = json.loads((tmp_path / "traj.csv.violations.json").read_text())
    assert len(report["violations"]) == len(err.violations) > 0
    res = resample(t, y, 1000)
    speed = np.linalg.norm(res.velocities, axis=1)
    assert [v.index for v in err.violations] == list(np.flatnonzero(speed > 1.0))
    assert all(v.value > v.limit == 1.0 for v in err.violations)


def test_scale_time_retimes_to_fit_the_limits(tmp_path):
    """Verify --scale-time: the slowest-needed uniform retiming fits every limit and keeps the knot positions."""
    t = np.arange(11) * DT
    y = np.stack([np.linspace(0, 0.2, 11), 0.05 * np.sin(np.linspace(0, 3, 11))], axis=1)
    profile = _box_profile(velocity=1.0, acceleration=20.0, jerk=2000.0)
    res = export_trajectory(t, y, ["tool_x", "tool_z"], tmp_path / "t.json", robot=profile, rate=1000,
                            scale_time=True)
    assert res.time_scale > 1.0
    traj = load_trajectory(res.path)
    assert traj.metadata["time_scale"] == res.time_scale
    assert np.linalg.norm(traj.velocities, axis=1).max() <= 1.0
    assert np.linalg.norm(traj.accelerations, axis=1).max() <= 20.0
    _, knots = knots_from_export(traj)
    np.testing.assert_allclose(knots, y, atol=1e-7)
    # A little less slow-down would not fit: the factor is (close to) the smallest.
    with pytest.raises(TrajectoryLimitError):
        export_trajectory(t * res.time_scale * 0.97, y, ["tool_x", "tool_z"], tmp_path / "u.json",
                          robot=profile, rate=1000)


def test_bad_export_arguments_are_refused():
    """Verify one clear error for a rate <= 0, an unknown profile, an unknown axis and an unknown format."""
    t, y = _knots()
    with pytest.raises(ConfigError, match="rate"):
        export_trajectory(t, y, ["tool_x", "tool_z"], "x.csv", rate=0)
    with pytest.raises(ConfigError, match="robot"):
        export_trajectory(t, y, ["tool_x", "tool_z"], "x.csv", robot="no_such_robot")
    with pytest.raises(ConfigError, match="axis"):
        export_trajectory(t, y, ["tool_x", "elbow"], "x.csv", robot="generic")
    with pytest.raises(ConfigError, match="format"):
        export_trajectory(t, y, ["tool_x", "tool_z"], "x.txt")


def test_shipped_profiles_load_with_their_rates():
    """Verify the shipped robot profiles: Franka at 1 kHz, UR5e at 500 Hz, UR5 (CB3) at 125 Hz, and a generic one."""
    rates = {name: load_robot_profile(name).rate_hz for name in ("franka_panda", "ur5e", "ur5_cb3", "generic")}
    assert rates == {"franka_panda": 1000.0, "ur5e": 500.0, "ur5_cb3": 125.0, "generic": 500.0}
    panda = load_robot_profile("franka_panda")
    assert panda.translation.velocity == 1.7 and len(panda.joints) == 7
