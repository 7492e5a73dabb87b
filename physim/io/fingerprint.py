"""Digests of physim's own source code, for caches of simulated data.

A cached trajectory (a fluid task's goal, an NCLaw ground truth, a GIOROM dataset shard) is only
valid for the kernels that recorded it: a change of the MPM engine or of a material law changes
the data although no setting did. Caches therefore key on the settings *and* on a digest of the
source files of the packages that produced the data, so a stale file is regenerated instead of
silently reused.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from pathlib import Path

__all__ = ["source_digest"]


@functools.cache
def source_digest(*packages: str) -> str:
    """Hex SHA-256 of the ``*.py`` files of the named packages (paths and contents, sorted).

    Args:
        packages: Importable package names, e.g. ``"physim.mpm"``.

    Returns:
        64 hexadecimal characters; equal across processes for the same sources.
    """
    h = hashlib.sha256()
    for name in packages:
        module = importlib.import_module(name)
        root = Path(module.__file__).parent
        h.update(name.encode())
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()
