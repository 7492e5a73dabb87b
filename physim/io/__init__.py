"""Files in and out of physim: atomic writes, robot trajectory export and loading.

`load_trajectory` and the export functions load on first use (scipy, yaml), so
``import physim.io`` stays cheap.
"""

from __future__ import annotations

import importlib

from physim.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = [
    "Trajectory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "export_trajectory",
    "load_robot_profile",
    "load_trajectory",
    "write_trajectory",
]

_LAZY = {
    "Trajectory": "physim.io.trajectory_file",
    "load_trajectory": "physim.io.trajectory_file",
    "write_trajectory": "physim.io.trajectory_file",
    "export_trajectory": "physim.io.export",
    "load_robot_profile": "physim.io.robots",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'physim.io' has no attribute {name!r}")
