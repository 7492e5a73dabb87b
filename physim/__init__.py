"""physim: differentiable physics and neural operators with exact, tested gradients.

`import physim` is cheap: it loads torch-free metadata only. Backends (Warp, Taichi,
dolfinx, torch-geometric) and the simulator subpackages are imported on first use::

    import physim
    physim.runtime.device()          # imports physim.runtime on first access
    from physim.springs import WarpChain
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from physim.errors import ConfigError, PhysimError, SimulationDiverged

__version__ = "0.1.0"

# Subpackages reachable as attributes without an explicit import; each loads on first access.
_LAZY_SUBMODULES = frozenset(
    {
        "autodiff",
        "cli",
        "config",
        "fe",
        "gas",
        "io",
        "mpm",
        "optim",
        "rom",
        "runtime",
        "shells",
        "solvers",
        "spectral",
        "springs",
        "tactile",
        "testing",
    }
)

__all__ = ["ConfigError", "PhysimError", "SimulationDiverged", "__version__", *sorted(_LAZY_SUBMODULES)]

if TYPE_CHECKING:  # pragma: no cover
    from physim import autodiff, runtime, springs, testing  # noqa: F401


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"physim.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'physim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBMODULES)
