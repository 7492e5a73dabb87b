"""A system-identification scene on the MPM engine: an elastic block thrown onto a rough floor.

`mpm_block_marker_model` returns ``simulate(params) -> marker positions`` for
`identify`: a 2-D elastic block (fixed-corotated) lands sideways on a floor with
Coulomb friction and is tracked through a subset of its particles (markers, as a camera
would track dots on a real block). Young's modulus changes how the block deforms and
rebounds, the friction coefficient how far it slides; both reach the observation
through `physim.mpm.Simulator`'s differentiable rollout.
"""

from __future__ import annotations

import torch

from physim.config import check_int

__all__ = ["mpm_block_marker_model"]


def mpm_block_marker_model(*, steps: int = 20, marker_stride: int = 8, grid: int = 16, device=None):
    """``simulate(params) -> positions`` [m], shape (steps, markers, 2), for ``{"E": ..., "friction": ...}``.

    Args:
        steps: Control steps observed (5 substeps of 0.4 ms each).
        marker_stride: Every k-th particle is a marker.
        grid: Grid cells per side of the unit square domain.
        device: Torch device (default: physim's).

    Returns:
        The model; its ``sim`` attribute is the `physim.mpm.Simulator`.
    """
    from physim.mpm import Body, Box, Elastic, PlaneCollider, SceneConfig, Simulator

    check_int("steps", steps, 1)
    check_int("marker_stride", marker_stride, 1)
    cfg = SceneConfig(dim=2, grid=grid, dt=4e-4, substeps=5, dtype="float64", **({"device": device} if device else {}))
    block = Body(name="block", shape=Box(center=(0.5, 0.42), size=(0.22, 0.22)),
                 material=Elastic(E=2e4, nu=0.25, density=1e3), velocity=(0.8, -1.0))
    floor = PlaneCollider(name="floor", position=(0.0, 0.3, 0.0), friction=0.4)
    sim = Simulator(cfg, [block], [floor])

    def simulate(params: dict[str, torch.Tensor]) -> torch.Tensor:
        sim.params["block.E"] = params["E"].to(sim.params["block.E"])
        sim.params["floor.friction"] = params["friction"].to(sim.params["floor.friction"])
        out = sim.rollout(sim.reset(), steps=steps, checkpoint_every=5,
                          observe=lambda t, s: s.x[::marker_stride])
        return out.observations

    simulate.sim = sim
    return simulate
