"""Robot profiles: the limits an exported trajectory is checked against (assets/robots/*.yaml).

A profile names a controller rate and the limits of a robot, in its base frame:

```yaml
name: franka_panda
description: Franka Emika Panda (FER) through libfranka's Cartesian interface
rate_hz: 1000                # the controller's command rate [Hz]
interpolation: quintic       # quintic (continuous jerk-free acceleration) or cubic
at_rest: true                # start and end with zero velocity and acceleration
cartesian:
  origin: [0.45, 0.0, 0.35]  # where the task frame's origin lies in the base frame [m]
  workspace: {x: [0.25, 0.70], y: [-0.40, 0.40], z: [0.05, 0.75]}   # tool box [m]
  translation: {velocity: 1.7, acceleration: 13.0, jerk: 6500.0}     # norms [m/s, m/s², m/s³]
  rotation: {velocity: 2.5, acceleration: 25.0, jerk: 12500.0}       # norms [rad/s, ...]
joints:                      # optional, for joint-space trajectories
  panda_joint1: {position: [-2.8973, 2.8973], velocity: 2.175, acceleration: 15.0, jerk: 7500.0}
source: where the numbers come from
```

Any limit may be ``null`` (not checked). Unknown keys, wrong types and non-positive
limits are refused with one line naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from physim.errors import FileError

__all__ = [
    "ROBOTS_DIR",
    "FileFormatError",
    "JointLimits",
    "MotionLimits",
    "RobotProfile",
    "list_robot_profiles",
    "load_robot_profile",
]

#: Folder of the profiles shipped with physim.
ROBOTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "robots"

#: Axis names of Cartesian tool trajectories: translations [m] and orientations [rad].
TRANSLATION_AXES = ("tool_x", "tool_y", "tool_z")
ROTATION_AXES = ("tool_roll", "tool_pitch", "tool_yaw")


class FileFormatError(FileError):
    """A file physim reads is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class MotionLimits:
    """Limits on the norm of a velocity, acceleration and jerk; None: not checked."""

    velocity: float | None = None
    acceleration: float | None = None
    jerk: float | None = None


@dataclass(frozen=True)
class JointLimits:
    """Limits of one joint: position range [rad or m] and derivative bounds; None: not checked."""

    position: tuple[float, float] | None = None
    velocity: float | None = None
    acceleration: float | None = None
    jerk: float | None = None


@dataclass(frozen=True)
class RobotProfile:
    """A robot's controller rate and limits; see the module docstring for the file format."""

    name: str
    rate_hz: float
    description: str = ""
    interpolation: str = "quintic"
    at_rest: bool = True
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    workspace: dict[str, tuple[float, float]] = field(default_factory=dict)
    translation: MotionLimits = field(default_factory=MotionLimits)
    rotation: MotionLimits = field(default_factory=MotionLimits)
    joints: dict[str, JointLimits] = field(default_factory=dict)
    source: str = ""
    path: str = ""


def list_robot_profiles() -> list[str]:
    """Names of the profiles shipped in assets/robots/."""
    return sorted(p.stem for p in ROBOTS_DIR.glob("*.yaml"))


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, what: str):
        raise FileFormatError(self.path, f"{key}: {what}")

    def mapping(self, data, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(data, dict):
            self.fail(key, f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            self.fail(key, f"unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")
        for r in required:
            if r not in data:
                self.fail(key, f"missing key {r!r}")
        return data

    def number(self, value, key: str, *, positive: bool = False, optional: bool = True) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                pass
            else:  # PyYAML follows YAML 1.1, which reads 1.0e5 (no sign in the exponent) as text
                self.fail(key, f"{value!r} is text, not a number (write 1.0e+5 or 100000.0)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"{value!r} is not a finite number")
        if positive and value <= 0:
            self.fail(key, f"{value!r} is not positive")
        return float(value)

    def pair(self, value, key: str) -> tuple[float, float]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            self.fail(key, f"expected [min, max], got {value!r}")
        lo, hi = (self.number(v, key, optional=False) for v in value)
        if lo >= hi:
            self.fail(key, f"min {lo} is not below max {hi}")
        return lo, hi

    def limits(self, data, key: str) -> MotionLimits:
        if data is None:
            return MotionLimits()
        d = self.mapping(data, key, ("velocity", "acceleration", "jerk"))
        return MotionLimits(*(self.number(d.get(k), f"{key}.{k}", positive=True)
                              for k in ("velocity", "acceleration", "jerk")))


def load_robot_profile(name_or_path: str | Path) -> RobotProfile:
    """Load a robot profile by name (assets/robots/<name>.yaml) or from a YAML file.

    Raises:
        ConfigError: An unknown name (the message lists the shipped profiles).
        FileFormatError: A malformed file (one line naming the file and the key).
    """
    import yaml

    from physim.errors import ConfigError

    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = ROBOTS_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            raise ConfigError("robot", str(name_or_path),
                              "a profile name (" + ", ".join(list_robot_profiles()) + ") or a path to a .yaml file")
    if not p.exists():
        raise ConfigError("robot", str(name_or_path), "an existing robot profile file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise FileFormatError(p, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    r = _Reader(p)
    top = ("name", "description", "rate_hz", "interpolation", "at_rest", "cartesian", "joints", "source")
    d = r.mapping(data, "profile", top, required=("name", "rate_hz"))
    if not isinstance(d["name"], str) or not d["name"]:
        r.fail("name", "expected a non-empty string")
    interpolation = d.get("interpolation", "quintic")
    if interpolation not in ("quintic", "cubic"):
        r.fail("interpolation", f"{interpolation!r} is not 'quintic' or 'cubic'")
    at_rest = d.get("at_rest", True)
    if not isinstance(at_rest, bool):
        r.fail("at_rest", f"{at_rest!r} is not true or false")
    cart = r.mapping(d.get("cartesian") or {}, "cartesian", ("origin", "workspace", "translation", "rotation"))
    origin = cart.get("origin", [0.0, 0.0, 0.0])
    if not isinstance(origin, (list, tuple)) or len(origin) != 3:
        r.fail("cartesian.origin", f"expected [x, y, z], got {origin!r}")
    origin = tuple(r.number(v, "cartesian.origin", optional=False) for v in origin)
    ws = r.mapping(cart.get("workspace") or {}, "cartesian.workspace", ("x", "y", "z"))
    workspace = {k: r.pair(v, f"cartesian.workspace.{k}") for k, v in ws.items()}
    joints = {}
    for jname, jd in r.mapping(d.get("joints") or {}, "joints", tuple((d.get("joints") or {}).keys())).items():
        jd = r.mapping(jd, f"joints.{jname}", ("position", "velocity", "acceleration", "jerk"))
        joints[str(jname)] = JointLimits(
            position=None if jd.get("position") is None else r.pair(jd["position"], f"joints.{jname}.position"),
            velocity=r.number(jd.get("velocity"), f"joints.{jname}.velocity", positive=True),
            acceleration=r.number(jd.get("acceleration"), f"joints.{jname}.acceleration", positive=True),
            jerk=r.number(jd.get("jerk"), f"joints.{jname}.jerk", positive=True),
        )
    return RobotProfile(
        name=d["name"],
        rate_hz=r.number(d["rate_hz"], "rate_hz", positive=True, optional=False),
        description=str(d.get("description", "")),
        interpolation=interpolation,
        at_rest=at_rest,
        origin=origin,
        workspace=workspace,
        translation=r.limits(cart.get("translation"), "cartesian.translation"),
        rotation=r.limits(cart.get("rotation"), "cartesian.rotation"),
        joints=joints,
        source=str(d.get("source", "")),
        path=str(p),
    )
