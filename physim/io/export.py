"""Sim-to-real export: an optimised tool trajectory → a controller-rate file a robot can replay.

    physim export runs/pour --format csv --rate 1000 --robot franka_panda

reads the run folder written by ``physim trajopt`` (its ``tool_path.json``: the tool's
positions at the simulator's control steps), maps the task frame into the robot's base
frame (the profile's ``origin``, or ``--origin``), joins the knots with a quintic (or
cubic) spline that passes through every knot exactly, samples it at the controller
rate, and checks every sample against the robot profile: workspace box, velocity,
acceleration and jerk (norms of the translational and rotational parts; per joint for
joint trajectories). A violation is **refused, never clipped**: `TrajectoryLimitError`
lists where (sample index, time, axis) and by how much, and the full list goes to
``<out>.violations.json``. ``--scale-time`` slows the whole trajectory down uniformly by
the smallest factor that fits the velocity, acceleration and jerk limits (workspace
violations cannot be fixed by retiming). Mind that retiming a *dynamic* task changes its
physics: replay the retimed trajectory in the simulator before trusting it.

Every file carries metadata: task, seed, method, loss, physim version, units, frame,
rate, interpolation, time scale and robot profile.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from physim.config import check_choice
from physim.errors import ConfigError, PhysimError
from physim.io.atomic import atomic_write_text
from physim.io.resample import Resampled, min_time_scale, peak_derivatives, resample
from physim.io.robots import (
    ROTATION_AXES,
    TRANSLATION_AXES,
    FileFormatError,
    RobotProfile,
    load_robot_profile,
)
from physim.io.trajectory_file import FORMATS, Trajectory, write_trajectory

__all__ = [
    "ExportConfig",
    "ExportResult",
    "TrajectoryLimitError",
    "Violation",
    "check_limits",
    "cli_export",
    "export_run",
    "export_trajectory",
    "knots_from_export",
]

_QUANTITIES = ("position", "velocity", "acceleration", "jerk")


@dataclass(frozen=True)
class Violation:
    """One sample outside a limit.

    Attributes:
        index: Sample index in the exported (controller-rate) trajectory.
        time: Its time_from_start [s].
        axis: Axis name, or ``"translation"`` / ``"rotation"`` for the norm of a Cartesian group.
        quantity: ``"position"``, ``"velocity"``, ``"acceleration"`` or ``"jerk"``.
        value: The sample's value (SI units; a norm for a Cartesian group).
        limit: The limit it exceeds (the bound it crosses, for a position).
    """

    index: int
    time: float
    axis: str
    quantity: str
    value: float
    limit: float

    @property
    def excess(self) -> float:
        """By how much the limit is exceeded (positive)."""
        return abs(self.value) - abs(self.limit) if self.quantity != "position" else abs(self.value - self.limit)


class TrajectoryLimitError(PhysimError, ValueError):
    """The trajectory violates the robot profile; nothing was written but the violations report."""

    def __init__(self, violations: list[Violation], profile: str, report: Path | None):
        self.violations = violations
        self.profile = profile
        self.report = report
        groups: dict[tuple[str, str], list[Violation]] = {}
        for v in violations:
            groups.setdefault((v.axis, v.quantity), []).append(v)
        parts = []
        for (axis, quantity), vs in groups.items():
            first, worst = vs[0], max(vs, key=lambda v: v.excess)
            parts.append(f"{quantity} of {axis} {first.value:.6g} beyond limit {first.limit:.6g} first at sample "
                         f"{first.index} (t={first.time:.4f} s), worst {worst.value:.6g} at sample {worst.index}, "
                         f"{len(vs)} samples")
        fixable = any(q != "position" for _, q in groups)
        hint = "; --scale-time retimes to fit velocity/acceleration/jerk limits" if fixable else ""
        where = f"; full list in {report}" if report is not None else ""
        super().__init__(f"trajectory refused by robot profile {profile!r} ({len(violations)} violations): "
                         + "; ".join(parts) + where + hint)


def _axis_groups(names: list[str], profile: RobotProfile) -> tuple[list[int], list[int], dict[int, str]]:
    trans = [i for i, n in enumerate(names) if n in TRANSLATION_AXES]
    rot = [i for i, n in enumerate(names) if n in ROTATION_AXES]
    joints = {i: n for i, n in enumerate(names) if n in profile.joints}
    unknown = [n for i, n in enumerate(names) if i not in trans and i not in rot and i not in joints]
    if unknown:
        raise ConfigError("axis", unknown[0], f"a Cartesian tool axis ({', '.join(TRANSLATION_AXES + ROTATION_AXES)}) "
                          f"or a joint of robot profile {profile.name!r} ({', '.join(profile.joints) or 'none'})")
    return trans, rot, joints


def check_limits(res: Resampled, names: list[str], profile: RobotProfile) -> list[Violation]:
    """Every sample of `res` (positions in the robot's base frame) that violates `profile`."""
    trans, rot, joints = _axis_groups(names, profile)
    out: list[Violation] = []
    t = res.times

    def over(values: np.ndarray, limit: float | None, axis: str, quantity: str) -> None:
        if limit is None:
            return
        for k in np.flatnonzero(np.abs(values) > limit):
            out.append(Violation(int(k), float(t[k]), axis, quantity, float(values[k]), float(limit)))

    def outside(values: np.ndarray, bounds: tuple[float, float] | None, axis: str) -> None:
        if bounds is None:
            return
        lo, hi = bounds
        for k in np.flatnonzero((values < lo) | (values > hi)):
            v = float(values[k])
            out.append(Violation(int(k), float(t[k]), axis, "position", v, lo if v < lo else hi))

    for i in trans:
        outside(res.positions[:, i], profile.workspace.get(names[i].removeprefix("tool_")), names[i])
    for group, limits, label in ((trans, profile.translation, "translation"), (rot, profile.rotation, "rotation")):
        if group:
            for quantity, arr, limit in (("velocity", res.velocities, limits.velocity),
                                         ("acceleration", res.accelerations, limits.acceleration),
                                         ("jerk", res.jerks, limits.jerk)):
                over(np.linalg.norm(arr[:, group], axis=1), limit, label, quantity)
    for i, name in joints.items():
        lim = profile.joints[name]
        outside(res.positions[:, i], lim.position, name)
        over(res.velocities[:, i], lim.velocity, name, "velocity")
        over(res.accelerations[:, i], lim.acceleration, name, "acceleration")
        over(res.jerks[:, i], lim.jerk, name, "jerk")
    out.sort(key=lambda v: (v.index, _QUANTITIES.index(v.quantity), v.axis))
    return out


@dataclass(frozen=True)
class ExportResult:
    """What `export_trajectory` wrote: the file, the retiming factor and the record itself."""

    path: Path
    time_scale: float
    samples: int
    trajectory: Trajectory


def _offsets(names: list[str], origin) -> np.ndarray:
    return np.asarray([origin[TRANSLATION_AXES.index(n)] if n in TRANSLATION_AXES else 0.0 for n in names])


def export_trajectory(
    knot_times,
    knot_positions,
    axis_names: list[str],
    path: str | Path,
    *,
    robot: str | Path | RobotProfile = "generic",
    rate: float | None = None,
    fmt: str | None = None,
    scale_time: bool = False,
    origin: tuple[float, float, float] | None = None,
    interpolation: str | None = None,
    metadata: dict | None = None,
) -> ExportResult:
    """Resample knots to a controller rate, check them against a robot profile, and write the file.

    Args:
        knot_times: Knot times [s], shape (k,), strictly increasing (the control steps).
        knot_positions: Tool (or joint) positions at the knots in the task frame, shape (k, axes).
        axis_names: Names of the axes (``tool_x``, ``tool_z``, ... or joint names).
        path: Output file; its suffix gives the format unless `fmt` is given.
        robot: Profile name, YAML path or `RobotProfile`.
        rate: Controller rate [Hz]; None: the profile's.
        fmt: ``"csv"``, ``"json"`` or ``"yaml"``.
        scale_time: Retime uniformly to fit velocity/acceleration/jerk limits instead of refusing.
        origin: Task-frame origin in the robot's base frame [m]; None: the profile's.
        interpolation: ``"quintic"`` or ``"cubic"``; None: the profile's.
        metadata: Extra metadata (task, seed, method, loss...).

    Returns:
        An `ExportResult`.

    Raises:
        ConfigError: Bad rate, format, axis names or shapes (before anything is computed).
        TrajectoryLimitError: A sample violates the profile (the file is not written;
            ``<path>.violations.json`` lists every violation).
    """
    profile = robot if isinstance(robot, RobotProfile) else load_robot_profile(robot)
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower().replace("yml", "yaml")
    check_choice("format", fmt, FORMATS)
    rate = profile.rate_hz if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigError("rate", rate, "a controller rate > 0 Hz")
    kind = interpolation or profile.interpolation
    check_choice("interpolation", kind, ("quintic", "cubic"))
    names = list(axis_names)
    t = np.asarray(knot_times, dtype=np.float64)
    y = np.asarray(knot_positions, dtype=np.float64)
    if y.ndim != 2 or y.shape != (t.size, len(names)):
        raise ConfigError("knot_positions", f"shape {y.shape}", f"({t.size}, {len(names)}): one column per axis name")
    trans, rot, _ = _axis_groups(names, profile)
    origin = tuple(profile.origin if origin is None else origin)
    if len(origin) != 3:
        raise ConfigError("origin", origin, "three numbers x, y, z [m]")
    y_base = y + _offsets(names, origin)

    scale = 1.0
    if scale_time:
        groups = [g for g in (trans, rot) if g]
        limits = [(profile.translation if g is trans else profile.rotation) for g in groups]
        peaks = peak_derivatives(t, y_base, kind=kind, at_rest=profile.at_rest, axes=groups)
        scale = min_time_scale(peaks, [(lim.velocity, lim.acceleration, lim.jerk) for lim in limits])
        for i, name in enumerate(names):
            if name in profile.joints:
                lim = profile.joints[name]
                (v, a, j), = peak_derivatives(t, y_base, kind=kind, at_rest=profile.at_rest, axes=[[i]])
                scale = max(scale, min_time_scale([(v, a, j)], [(lim.velocity, lim.acceleration, lim.jerk)]))
        if scale > 1.0:
            scale *= 1.0 + 1e-6  # margin for round-off
    for _ in range(8):
        res = resample(t, y_base, rate, kind=kind, at_rest=profile.at_rest, time_scale=scale)
        violations = check_limits(res, names, profile)
        only_derivatives = violations and all(v.quantity != "position" for v in violations)
        if not (scale_time and only_derivatives):
            break
        scale *= 1.02  # the dense grid missed a peak between its points: slow down a little more
    if violations:
        report = path.with_name(path.name + ".violations.json")
        atomic_write_text(report, json.dumps({"profile": profile.name, "rate_hz": rate, "time_scale": scale,
                                              "violations": [asdict(v) for v in violations]}, indent=1))
        raise TrajectoryLimitError(violations, profile.name, report)

    import physim

    # Tool translations are metres; orientations and (revolute) joints radians.
    base_units = ["m" if i in trans else "rad" for i in range(len(names))]
    units = {"time": "s", "positions": base_units, "velocities": [f"{u}/s" for u in base_units],
             "accelerations": [f"{u}/s^2" for u in base_units]}
    meta = {
        **(metadata or {}),
        "physim_version": physim.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "robot": profile.name,
        "rate_hz": float(rate),
        "interpolation": kind,
        "at_rest": profile.at_rest,
        "time_scale": scale,
        "units": units,
        "frame": {"frame_id": f"{profile.name}_base", "task_origin_in_base": list(origin),
                  "task_frame": (metadata or {}).get("task_frame", "")},
        "knots": {"count": int(t.size), "times": [float(v) for v in t]},
    }
    traj = Trajectory(names, res.times, res.positions, res.velocities, res.accelerations, meta, f"{profile.name}_base")
    write_trajectory(traj, path, fmt)
    return ExportResult(path, scale, len(res.times), traj)


def knots_from_export(traj: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """The task-frame positions at the original knot times, recovered from an exported file.

    Undoes the retiming (``time_scale``) and the base-frame offset recorded in the
    metadata; positions between samples come from the file's Hermite interpolation.

    Returns:
        (knot times [s] in task time, shape (k,), positions, shape (k, axes)).
    """
    meta = traj.metadata
    try:
        knot_times = np.asarray(meta["knots"]["times"], dtype=np.float64)
        scale = float(meta["time_scale"])
        origin = meta["frame"]["task_origin_in_base"]
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(meta.get("_path", "trajectory"), "metadata lacks knots.times, time_scale or "
                              "frame.task_origin_in_base (not written by physim export?)") from None
    pos = traj.sample(knot_times * scale) - _offsets(traj.joint_names, origin)
    return knot_times, pos


# -- the run folder and the command ---------------------------------------------------------------
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileFormatError(path, f"missing: {what}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"not valid JSON ({exc})".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise FileFormatError(path, "expected a JSON object")
    return data


def read_tool_path(run_dir: str | Path) -> dict:
    """The validated ``tool_path.json`` of a trajopt run folder."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError("run_dir", str(run_dir), "an existing run folder written by `physim trajopt`")
    path = run / "tool_path.json"
    data = _read_json(path, "this folder has no optimisation result; run `physim trajopt ... --out "
                            f"{run_dir}` first")
    for key in ("axis_names", "times", "positions"):
        if key not in data:
            raise FileFormatError(path, f"missing key {key!r}")
    names = data["axis_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise FileFormatError(path, "axis_names must be a list of strings")
    try:
        t = np.asarray(data["times"], dtype=np.float64)
        y = np.asarray(data["positions"], dtype=np.float64)
    except (TypeError, ValueError):
        raise FileFormatError(path, "times and positions must be numbers") from None
    if t.ndim != 1 or t.size < 2 or not np.all(np.diff(t) > 0) or not np.isfinite(t).all():
        raise FileFormatError(path, "times must be at least 2 finite, strictly increasing numbers")
    if y.shape != (t.size, len(names)) or not np.isfinite(y).all():
        raise FileFormatError(path, f"positions must be finite with shape ({t.size}, {len(names)}), got {y.shape}")
    data["times"], data["positions"] = t, y
    return data


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """Export the optimised tool trajectory of a `physim trajopt` run folder for a robot controller."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """Run folder written by `physim trajopt` (it holds tool_path.json)."""
    format: str = "csv"
    """File format: csv, json or yaml."""
    rate: float | None = None
    """Controller rate [Hz]; default: the robot profile's (Franka 1000, UR5e 500, UR5 CB3 125)."""
    robot: str = "generic"
    """Robot profile: a name from assets/robots/ or a path to a profile YAML."""
    scale_time: bool = False
    """Slow the trajectory down uniformly until it fits the velocity/acceleration/jerk limits."""
    origin: tuple[float, float, float] | None = None
    """Task-frame origin in the robot's base frame [m]; default: the profile's."""
    interpolation: str | None = None
    """quintic or cubic; default: the profile's."""
    out: Path | None = None
    """Output file; default: RUN_DIR/trajectory_<robot>.<format>."""

    def __post_init__(self) -> None:
        check_choice("format", self.format, FORMATS)
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError("rate", self.rate, "a controller rate > 0 Hz")
        if self.interpolation is not None:
            check_choice("interpolation", self.interpolation, ("quintic", "cubic"))


def export_run(cfg: ExportConfig) -> ExportResult:
    """Export a run folder's tool path (see `ExportConfig`)."""
    profile = load_robot_profile(cfg.robot)
    data = read_tool_path(cfg.run_dir)
    out = cfg.out or Path(cfg.run_dir) / f"trajectory_{profile.name}.{cfg.format}"
    meta = {k: data[k] for k in ("task", "seed", "method", "best_loss", "control_dt", "task_frame", "steps",
                                 "env_settings") if k in data}
    meta["source_run"] = str(cfg.run_dir)
    return export_trajectory(data["times"], data["positions"], data["axis_names"], out, robot=profile,
                             rate=cfg.rate, fmt=cfg.format, scale_time=cfg.scale_time, origin=cfg.origin,
                             interpolation=cfg.interpolation, metadata=meta)


def cli_export(cfg: ExportConfig) -> ExportResult:
    """`physim export`: write the file and say what was written."""
    res = export_run(cfg)
    meta = res.trajectory.metadata
    print(f"wrote {res.path}: {res.samples} samples at {meta['rate_hz']:g} Hz, {meta['interpolation']}, "
          f"robot {meta['robot']}, time scale {res.time_scale:.4g}")
    return res
