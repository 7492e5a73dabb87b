"""Trajectory records shaped like ROS 2 ``trajectory_msgs/JointTrajectory``, in CSV, JSON or YAML.

JSON and YAML map one-to-one to the ROS message, plus a ``metadata`` block::

    header: {frame_id: franka_panda_base, stamp: {sec: 0, nanosec: 0}}
    joint_names: [tool_x, tool_z]
    points:
      - positions: [0.5, 0.45]
        velocities: [0.0, 0.0]
        accelerations: [0.0, 0.0]
        effort: []
        time_from_start: {sec: 0, nanosec: 1000000}
    metadata: {format: physim-trajectory, version: 1, task: ..., seed: ..., units: ...}

CSV is one row per controller tick with the header ``t,q.<axis>…,qd.<axis>…,qdd.<axis>…``
(SI units), preceded by ``# physim-trajectory 1`` and one ``# metadata: {json}`` line, so
``pandas.read_csv(path, comment="#")`` reads it as a table.

`load_trajectory` reads any of the three back and validates it: a malformed file raises
`FileFormatError` with one line naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physim.io.atomic import atomic_write_text
from physim.io.robots import FileFormatError

__all__ = ["FORMATS", "Trajectory", "load_trajectory", "write_trajectory"]

FORMATS = ("csv", "json", "yaml")
_MAGIC = "physim-trajectory"
_VERSION = 1


@dataclass
class Trajectory:
    """A trajectory of named axes sampled at times.

    Attributes:
        joint_names: Axis names (joints, or ``tool_x``/``tool_y``/``tool_z``/``tool_roll``... for a tool).
        times: ``time_from_start`` [s], shape (n,).
        positions: Shape (n, axes) [m or rad].
        velocities: Shape (n, axes) [m/s or rad/s], or None.
        accelerations: Shape (n, axes) [m/s² or rad/s²], or None.
        metadata: Task, seed, physim version, units, frame, rate...
        frame_id: The ROS header's frame.
    """

    joint_names: list[str]
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None = None
    accelerations: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    frame_id: str = ""

    def sample(self, t: np.ndarray) -> np.ndarray:
        """Positions at times `t` [s], shape (len(t), axes), by Hermite interpolation of the samples.

        Quintic Hermite when velocities and accelerations are present (exact for piecewise
        quintic motion between samples), cubic with velocities only, linear otherwise;
        times outside the record hold its first or last position.
        """
        t = np.clip(np.asarray(t, dtype=np.float64), self.times[0], self.times[-1])
        i = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 2)
        h = (self.times[i + 1] - self.times[i])[:, None]
        s = (t - self.times[i])[:, None] / h
        p0, p1 = self.positions[i], self.positions[i + 1]
        if self.velocities is None:
            return p0 + s * (p1 - p0)
        v0, v1 = self.velocities[i] * h, self.velocities[i + 1] * h
        if self.accelerations is None:
            return ((2 * s**3 - 3 * s**2 + 1) * p0 + (s**3 - 2 * s**2 + s) * v0
                    + (-2 * s**3 + 3 * s**2) * p1 + (s**3 - s**2) * v1)
        a0, a1 = self.accelerations[i] * h**2, self.accelerations[i + 1] * h**2
        s2, s3, s4, s5 = s**2, s**3, s**4, s**5
        return ((1 - 10 * s3 + 15 * s4 - 6 * s5) * p0 + (s - 6 * s3 + 8 * s4 - 3 * s5) * v0
                + (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5) * a0 + (10 * s3 - 15 * s4 + 6 * s5) * p1
                + (-4 * s3 + 7 * s4 - 3 * s5) * v1 + (0.5 * s3 - s4 + 0.5 * s5) * a1)


def _duration(t: float) -> dict:
    ns = round(t * 1e9)
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def _to_message(traj: Trajectory) -> dict:
    points = []
    for k in range(len(traj.times)):
        points.append({
            "positions": [float(v) for v in traj.positions[k]],
            "velocities": [] if traj.velocities is None else [float(v) for v in traj.velocities[k]],
            "accelerations": [] if traj.accelerations is None else [float(v) for v in traj.accelerations[k]],
            "effort": [],
            "time_from_start": _duration(float(traj.times[k])),
        })
    return {
        "header": {"frame_id": traj.frame_id, "stamp": {"sec": 0, "nanosec": 0}},
        "joint_names": list(traj.joint_names),
        "points": points,
        "metadata": {"format": _MAGIC, "version": _VERSION, **traj.metadata},
    }


def _to_csv(traj: Trajectory) -> str:
    buf = io.StringIO()
    buf.write(f"# {_MAGIC} {_VERSION}\n")
    meta = {"format": _MAGIC, "version": _VERSION, "frame_id": traj.frame_id, **traj.metadata}
    buf.write("# metadata: " + json.dumps(meta, separators=(",", ":")) + "\n")
    names = traj.joint_names
    cols = ["t"] + [f"q.{n}" for n in names]
    blocks = [traj.times[:, None], traj.positions]
    for prefix, arr in (("qd", traj.velocities), ("qdd", traj.accelerations)):
        if arr is not None:
            cols += [f"{prefix}.{n}" for n in names]
            blocks.append(arr)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in np.concatenate(blocks, axis=1):
        w.writerow([repr(float(v)) for v in row])
    return buf.getvalue()


def write_trajectory(traj: Trajectory, path: str | Path, fmt: str | None = None) -> Path:
    """Write `traj` atomically as CSV, JSON or YAML (from `fmt` or the file's suffix)."""
    from physim.errors import ConfigError

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower().replace("yml", "yaml")
    if fmt not in FORMATS:
        raise ConfigError("format", fmt, "one of " + ", ".join(FORMATS))
    if fmt == "csv":
        text = _to_csv(traj)
    elif fmt == "json":
        text = json.dumps(_to_message(traj), indent=1)
    else:
        import yaml

        text = yaml.safe_dump(_to_message(traj), sort_keys=False, default_flow_style=None, width=120)
    atomic_write_text(path, text)
    return path


# -- reading --------------------------------------------------------------------------------------
def _array(path, rows, what: str, n: int, axes: int, optional: bool) -> np.ndarray | None:
    lengths = {len(r) for r in rows}
    if lengths == {0} and optional:
        return None
    if lengths != {axes}:
        bad = next(k for k, r in enumerate(rows) if len(r) != axes)
        raise FileFormatError(path, f"point {bad}: {what} has {len(rows[bad])} values, expected {axes} "
                                    "(one per joint name)")
    try:
        arr = np.asarray(rows, dtype=np.float64).reshape(n, axes)
    except (TypeError, ValueError):
        raise FileFormatError(path, f"{what}: values that are not numbers") from None
    if not np.isfinite(arr).all():
        k = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise FileFormatError(path, f"point {k}: {what} is not finite")
    return arr


def _from_message(path: Path, msg) -> Trajectory:
    if not isinstance(msg, dict):
        raise FileFormatError(path, "expected a JointTrajectory mapping at the top level")
    for key in ("joint_names", "points"):
        if key not in msg:
            raise FileFormatError(path, f"missing {key!r}")
    names, points = msg["joint_names"], msg["points"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise FileFormatError(path, "joint_names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        raise FileFormatError(path, "joint_names has duplicates")
    if not isinstance(points, list) or len(points) < 2:
        raise FileFormatError(path, "points must be a list of at least 2 points")
    times = []
    for k, p in enumerate(points):
        if not isinstance(p, dict) or "positions" not in p or "time_from_start" not in p:
            raise FileFormatError(path, f"point {k}: needs 'positions' and 'time_from_start'")
        tfs = p["time_from_start"]
        if (not isinstance(tfs, dict) or not all(isinstance(tfs.get(f), int) and not isinstance(tfs.get(f), bool)
                                                 for f in ("sec", "nanosec"))):
            raise FileFormatError(path, f"point {k}: time_from_start must be {{sec: int, nanosec: int}}")
        times.append(tfs["sec"] + tfs["nanosec"] * 1e-9)
    n, axes = len(points), len(names)
    pos = _array(path, [p["positions"] for p in points], "positions", n, axes, optional=False)
    vel = _array(path, [p.get("velocities", []) for p in points], "velocities", n, axes, optional=True)
    acc = _array(path, [p.get("accelerations", []) for p in points], "accelerations", n, axes, optional=True)
    header = msg.get("header") or {}
    meta = msg.get("metadata") or {}
    if not isinstance(meta, dict):
        raise FileFormatError(path, "metadata must be a mapping")
    return _finish(path, Trajectory(list(names), np.asarray(times), pos, vel, acc, meta,
                                    str(header.get("frame_id", "")) if isinstance(header, dict) else ""))


def _from_csv(path: Path, text: str) -> Trajectory:
    lines = text.splitlines()
    meta: dict = {}
    body = []
    for k, line in enumerate(lines):
        if line.startswith("# metadata:"):
            try:
                meta = json.loads(line[len("# metadata:"):])
            except json.JSONDecodeError as exc:
                raise FileFormatError(path, f"line {k + 1}: metadata is not valid JSON ({exc.msg})") from None
        elif not line.startswith("#") and line.strip():
            body.append(line)
    if len(body) < 3:
        raise FileFormatError(path, "expected a header row and at least 2 data rows")
    rows = list(csv.reader(body))
    cols = rows[0]
    if not cols or cols[0] != "t":
        raise FileFormatError(path, "the header must start with 't' (time_from_start [s])")
    names = [c[2:] for c in cols if c.startswith("q.")]
    if not names:
        raise FileFormatError(path, "no position columns 'q.<axis>' in the header")
    idx = {c: i for i, c in enumerate(cols)}
    try:
        data = np.asarray([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise FileFormatError(path, f"a value is not a number ({exc})") from None
    if data.ndim != 2 or data.shape[1] != len(cols):
        bad = next(k for k, r in enumerate(rows[1:]) if len(r) != len(cols))
        raise FileFormatError(path, f"data row {bad + 1} has {len(rows[bad + 1])} values, expected {len(cols)}")
    if not np.isfinite(data).all():
        k = int(np.argwhere(~np.isfinite(data))[0][0])
        raise FileFormatError(path, f"data row {k + 1} is not finite")

    def block(prefix):
        keys = [f"{prefix}.{n}" for n in names]
        if not any(k in idx for k in keys):
            return None
        missing = [k for k in keys if k not in idx]
        if missing:
            raise FileFormatError(path, f"column {missing[0]!r} missing")
        return data[:, [idx[k] for k in keys]]

    meta = dict(meta)
    frame = str(meta.pop("frame_id", ""))
    return _finish(path, Trajectory(names, data[:, 0], block("q"), block("qd"), block("qdd"), meta, frame))


def _finish(path: Path, traj: Trajectory) -> Trajectory:
    t = traj.times
    if t[0] < 0 or not np.all(np.diff(t) > 0):
        k = int(np.argmax(np.diff(t) <= 0)) + 1 if t[0] >= 0 else 0
        raise FileFormatError(path, f"time_from_start must start at >= 0 and increase strictly (point {k})")
    meta = traj.metadata
    if meta.get("format", _MAGIC) != _MAGIC:
        raise FileFormatError(path, f"metadata.format is {meta.get('format')!r}, expected {_MAGIC!r}")
    if int(meta.get("version", _VERSION)) > _VERSION:
        raise FileFormatError(path, f"written by a newer physim (format version {meta.get('version')})")
    return traj


def load_trajectory(path: str | Path) -> Trajectory:
    """Read a trajectory written by `physim export` (CSV, JSON or YAML) and validate it.

    Raises:
        FileFormatError: Missing file, unknown suffix, or malformed content; one line
            naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".yaml", ".yml"):
        raise FileFormatError(path, f"unknown suffix {suffix!r} (expected .csv, .json, .yaml)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"cannot be read ({type(exc).__name__})") from None
    if suffix == ".csv":
        return _from_csv(path, text)
    if suffix == ".json":
        try:
            msg = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileFormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        import yaml

        try:
            msg = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FileFormatError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    return _from_message(path, msg)

