"""Optimizers: trajectory optimisation and system identification (`physim.optim.trajectory`).

Subpackages load on first use, so ``import physim.optim`` stays cheap.
"""

from __future__ import annotations

import importlib

__all__ = ["trajectory"]


def __getattr__(name: str):
    if name in __all__:
        module = importlib.import_module(f"physim.optim.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'physim.optim' has no attribute {name!r}")
