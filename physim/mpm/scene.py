"""Scene files: a YAML description of an MPM scene (grid, bodies, colliders, scripted actions).

Example (``assets/scenes/elastic_cube_drop.yaml``)::

    scene: {dim: 3, grid: 48, dt: 2.0e-4, substeps: 25, boundary: slip}
    steps: 60
    bodies:
      - name: jelly
        shape: {type: box, center: [0.5, 0.45, 0.5], size: [0.2, 0.2, 0.2]}
        material: {type: elastic, model: corotated, E: 2.0e4, nu: 0.3, density: 1000}
        velocity: [0.0, -1.0, 0.0]
    colliders:
      - {name: floor, type: plane, position: [0, 0.1, 0], normal: [0, 1, 0], friction: 0.5}
    actions:                       # kinematic colliders: phases of constant velocity
      press:
        - {steps: 40, linear: [0, -0.25, 0]}
        - {steps: 40, linear: [0, 0.25, 0], angular: [0, 0, 0]}

Every mapping is checked: an unknown key, shape, material or collider type raises a
`ValueError` naming the file and the key path (``bodies[0].material.E``) before any
kernel runs; values are validated by the dataclasses they fill.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from physim.errors import ConfigError
from physim.mpm import colliders as col
from physim.mpm import materials as mat
from physim.mpm import shapes as shp
from physim.mpm.bodies import Body
from physim.mpm.config import SceneConfig

__all__ = ["Scene", "SceneFileError", "load_scene"]

MATERIALS = {
    "elastic": mat.Elastic,
    "von_mises": mat.VonMises,
    "drucker_prager": mat.DruckerPrager,
    "newtonian": mat.NewtonianFluid,
    "non_newtonian": mat.NonNewtonianFluid,
    "rigid": mat.Rigid,
}
SHAPES = {"box": shp.Box, "sphere": shp.Sphere, "cylinder": shp.Cylinder, "mesh": shp.Mesh}
COLLIDERS = {
    "plane": col.PlaneCollider,
    "box": col.BoxCollider,
    "sphere": col.SphereCollider,
    "cylinder": col.CylinderCollider,
    "capsule": col.CapsuleCollider,
    "mesh": col.MeshCollider,
}
TOP_KEYS = {"scene", "steps", "seed", "bodies", "colliders", "actions", "render", "description"}
BODY_KEYS = {"name", "shape", "material", "velocity", "particles_per_cell", "sampling"}
PHASE_KEYS = {"steps", "linear", "angular"}
RENDER_KEYS = {"fps", "every", "size"}


class SceneFileError(ConfigError):
    """A scene file is malformed: names the file and the key path."""

    def __init__(self, path, key: str, value, expected: str):
        super().__init__(f"{path}: {key}", value, expected)


@dataclass
class Scene:
    """A loaded scene: everything `physim sim` needs."""

    path: Path
    cfg: SceneConfig
    bodies: list[Body]
    colliders: list[col.Collider]
    steps: int = 100
    seed: int = 0
    actions: dict = field(default_factory=dict)
    render: dict = field(default_factory=dict)
    description: str = ""

    def simulator(self, device=None):
        """Build the `Simulator`."""
        from physim.mpm.simulator import Simulator

        return Simulator(self.cfg, self.bodies, self.colliders, device=device, seed=self.seed)

    def action_sequence(self, sim, steps: int) -> torch.Tensor | None:
        """Per-step actions (steps, k, 6) from the phases in the file (zero after the last phase)."""
        shape = sim.action_shape
        if shape is None:
            return None
        out = torch.zeros(steps, *shape, device=sim.device, dtype=sim.dtype)
        kin = [c.name for c in sim.colliders if c.kinematic]
        for j, name in enumerate(kin):
            t = 0
            for phase in self.actions.get(name, []):
                n = int(phase["steps"])
                row = torch.tensor([*phase.get("linear", (0, 0, 0)), *phase.get("angular", (0, 0, 0))],
                                   dtype=sim.dtype)
                out[t : min(t + n, steps), j] = row
                t += n
        return out


def _check_keys(path, where: str, data, allowed: set[str]) -> dict:
    if not isinstance(data, dict):
        raise SceneFileError(path, where or "(top level)", type(data).__name__, "a mapping")
    for k in data:
        if k not in allowed:
            raise SceneFileError(path, f"{where}.{k}" if where else str(k), data[k],
                                 "no such key; allowed: " + ", ".join(sorted(allowed)))
    return data


def _build(path, where: str, cls, data: dict, drop=("type",), base: Path | None = None):
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    _check_keys(path, where, data, names | set(drop))
    kwargs = {}
    for k, v in data.items():
        if k in drop:
            continue
        if isinstance(v, list):
            v = tuple(v)
        if k == "path" and base is not None and isinstance(v, str) and not os.path.isabs(v):
            v = str(base / v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise SceneFileError(path, f"{where}.{exc.field}", exc.value, exc.expected) from None
    except TypeError as exc:
        raise SceneFileError(path, where, data, f"valid fields for {cls.__name__} ({exc})") from None


def _typed(path, where: str, data, table: dict, base: Path):
    if not isinstance(data, dict) or "type" not in data:
        raise SceneFileError(path, f"{where}.type", None if not isinstance(data, dict) else data.get("type"),
                             "one of " + ", ".join(table))
    kind = data["type"]
    if kind not in table:
        raise SceneFileError(path, f"{where}.type", kind, "one of " + ", ".join(table))
    return _build(path, where, table[kind], data, base=base)


def _yaml_loader():
    """A safe loader that also reads ``1e4``/``5.0e4`` as floats (YAML 1.2; PyYAML's 1.1 wants ``5.0e+4``)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"),
        list("-+0123456789."),
    )
    return Loader


def load_scene(path: str | os.PathLike) -> Scene:
    """Read and validate a scene file (YAML)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError("scene", str(path), "an existing scene file (.yaml)")
    try:
        data = yaml.load(path.read_text(), Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        raise SceneFileError(path, "(yaml)", type(exc).__name__, f"valid YAML ({exc})".splitlines()[0]) from None
    data = _check_keys(path, "", data or {}, TOP_KEYS)
    base = path.parent
    cfg = _build(path, "scene", SceneConfig, dict(data.get("scene", {})), drop=())
    bodies = []
    raw_bodies = data.get("bodies")
    if not isinstance(raw_bodies, list) or not raw_bodies:
        raise SceneFileError(path, "bodies", raw_bodies, "a non-empty list of bodies")
    for i, b in enumerate(raw_bodies):
        where = f"bodies[{i}]"
        b = _check_keys(path, where, b, BODY_KEYS)
        for req in ("shape", "material"):
            if req not in b:
                raise SceneFileError(path, f"{where}.{req}", None, "a mapping with a 'type'")
        shape = _typed(path, f"{where}.shape", b["shape"], SHAPES, base)
        material = _typed(path, f"{where}.material", b["material"], MATERIALS, base)
        rest = {k: (tuple(v) if isinstance(v, list) else v) for k, v in b.items() if k not in ("shape", "material")}
        try:
            bodies.append(Body(shape=shape, material=material, **rest))
        except ConfigError as exc:
            raise SceneFileError(path, f"{where}.{exc.field}", exc.value, exc.expected) from None
    colliders = []
    for i, c in enumerate(data.get("colliders") or []):
        colliders.append(_typed(path, f"colliders[{i}]", c, COLLIDERS, base))
    names = {c.name for c in colliders if c.kinematic}
    actions = data.get("actions") or {}
    _check_keys(path, "actions", actions, names)
    for name, phases in actions.items():
        if not isinstance(phases, list):
            raise SceneFileError(path, f"actions.{name}", phases, "a list of phases {steps, linear, angular}")
        for j, ph in enumerate(phases):
            _check_keys(path, f"actions.{name}[{j}]", ph, PHASE_KEYS)
            n = ph.get("steps")
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise SceneFileError(path, f"actions.{name}[{j}].steps", n, "a non-negative integer")
            for key in ("linear", "angular"):
                v = ph.get(key, [0, 0, 0])
                if not (isinstance(v, list) and len(v) == 3 and all(isinstance(c, (int, float)) and math.isfinite(c)
                                                                       for c in v)):
                    raise SceneFileError(path, f"actions.{name}[{j}].{key}", v, "3 finite numbers [m/s or rad/s]")
    render = _check_keys(path, "render", data.get("render") or {}, RENDER_KEYS)
    steps = data.get("steps", 100)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SceneFileError(path, "steps", steps, "a positive integer")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SceneFileError(path, "seed", seed, "a non-negative integer")
    return Scene(path=path, cfg=cfg, bodies=bodies, colliders=colliders, steps=steps, seed=seed, actions=actions,
                 render=render, description=str(data.get("description", "")))
