"""An Eulerian smoke/air grid on Taichi, differentiable end to end through physim's bridge.

Incompressible gas on a staggered (MAC) grid in a closed box, in 2D or 3D:
semi-Lagrangian or MacCormack advection of the velocity and of smoke scalars, fans
and sources, buoyancy, dissipation, and pressure projection by Jacobi sweeps
(gradients through every sweep) or conjugate gradients (adjoint solve). FluidLab's
smoke field (Circulation task) is the anchor. Importing this package loads no backend;
constructing a `GasSimulator` starts Taichi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from physim.gas.config import FanConfig, GasConfig, GasState
from physim.gas.geometry import box_mask, cell_velocity, divergence, open_faces, slab_mask
from physim.gas.presets import circulation_config, circulation_solid

__all__ = [
    "FanConfig",
    "GasConfig",
    "GasSimulator",
    "GasState",
    "box_mask",
    "cell_velocity",
    "circulation_config",
    "circulation_solid",
    "divergence",
    "open_faces",
    "render_gif",
    "render_slice",
    "slab_mask",
    "slice_frame",
]

if TYPE_CHECKING:  # pragma: no cover
    from physim.gas.render import render_gif, render_slice, slice_frame
    from physim.gas.simulator import GasSimulator


def __getattr__(name: str):
    if name == "GasSimulator":
        from physim.gas.simulator import GasSimulator

        return GasSimulator
    if name in ("render_slice", "render_gif", "slice_frame"):
        from physim.gas import render

        return getattr(render, name)
    raise AttributeError(f"module 'physim.gas' has no attribute {name!r}")
