"""Angle-of-repose procedures for 3D sand heaps (docs/mpm.md, "Sand in 3D").

Three ways to make an axisymmetric heap of `DruckerPrager` sand on a rough floor, each built
on a grid fitted to the heap (the domain walls are far from the sand):

- ``"cone"``: a cone of slope ``angle`` [deg], built at rest: does a heap at rest keep its
  slope? (Its stresses come from switching gravity on, not from a flow, so it measures the
  static strength, which for this material is well above the angle of a poured heap.)
- ``"lift"``: the lab's lifting-cylinder test. A column fills a thin tube (a ring of
  kinematic box colliders) that is lifted slowly; the sand flows out at its foot and piles
  up with little inertia: the repose angle of a heap built by flow.
- ``"collapse"``: the tube vanishes at once (a column collapse). The column's fall carries
  the sand beyond the heap it could keep, so the deposit is flatter than the angle of repose
  and flatter the taller the column (Lube et al. 2004; Lajeunesse et al. 2004).

`heap_angle` measures the flank with `physim.mpm.diagnostics.cone_angle`; `flank_stress_state`
reads the Lode parameter and the mobilised friction on the flank. A heap must be about 8 cells
tall for its flank to reach φ within 5°: coarser heaps settle flatter for numerical reasons
(docs/mpm.md, "Sand in 3D, resolved").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physim.config import check_choice, check_int, check_positive, check_range
from physim.mpm.bodies import Body
from physim.mpm.colliders import BoxCollider, PlaneCollider
from physim.mpm.config import SceneConfig
from physim.mpm.diagnostics import cone_angle
from physim.mpm.materials import DruckerPrager, lame
from physim.mpm.materials.drucker_prager import friction_alpha
from physim.mpm.shapes import Particles
from physim.mpm.simulator import Simulator

__all__ = ["PROCEDURES", "ReposeTest", "flank_stress_state", "heap_angle", "repose_scene", "settle"]

PROCEDURES = ("cone", "lift", "collapse")


@dataclass(frozen=True, kw_only=True)
class ReposeTest:
    """An angle-of-repose experiment in 3D (units SI).

    Example::

        ReposeTest(procedure="cone", angle=40.0, radius=0.12, material=DruckerPrager(friction_angle=30.0))
    """

    procedure: str = "cone"
    """``"cone"``, ``"lift"`` or ``"collapse"`` (see the module docstring)."""
    material: DruckerPrager
    """The sand."""
    radius: float = 0.12
    """Base radius of the cone, or inner radius of the tube [m]."""
    angle: float = 40.0
    """Initial slope of the cone [deg] (``"cone"`` only)."""
    height: float = 0.12
    """Height of the column in the tube [m] (``"lift"``, ``"collapse"``)."""
    lift_speed: float = 0.1
    """Speed at which the tube rises [m/s] (``"lift"``)."""
    tube_friction: float = 0.3
    """Coulomb friction of the tube wall (``"lift"``)."""
    tube_segments: int = 16
    """Flat box colliders approximating the tube (``"lift"``)."""
    floor_friction: float = 2.0
    """Coulomb friction of the floor (2: the sand does not slide on it)."""
    dx: float = 1.0 / 64
    """Grid spacing [m]."""
    particles_per_cell: int = 8
    """Particles per cell (a lattice of 2 × 2 × 2 for 8)."""
    dt: float = 2e-4
    """Substep [s]."""
    runout: float = 0.13
    """Room left around the initial footprint for the heap to spread [m]."""
    axis_offset: float = 0.0
    """Shift of the heap's axis along x and z, in cells, in [0, 1), from the domain centre (a grid
    node when the node count is even, a cell centre when odd). Averaging over offsets 0 and 0.5
    removes the grid-alignment scatter of small heaps."""

    def __post_init__(self) -> None:
        check_choice("procedure", self.procedure, PROCEDURES)
        if not isinstance(self.material, DruckerPrager):
            from physim.errors import ConfigError

            raise ConfigError("material", type(self.material).__name__, "a DruckerPrager material")
        check_positive("radius", self.radius)
        check_range("angle", self.angle, 0.0, 90.0, low_inclusive=False, high_inclusive=False)
        check_positive("height", self.height)
        check_positive("lift_speed", self.lift_speed)
        check_range("tube_friction", self.tube_friction, 0.0)
        check_int("tube_segments", self.tube_segments, 6, 256)
        check_range("floor_friction", self.floor_friction, 0.0)
        check_positive("dx", self.dx)
        check_int("particles_per_cell", self.particles_per_cell, 1, 64)
        check_positive("dt", self.dt)
        check_range("runout", self.runout, 0.0)
        check_range("axis_offset", self.axis_offset, 0.0, 1.0, high_inclusive=False)


def _lattice(half_width: float, height: float, h: float) -> np.ndarray:
    """Cell-centred lattice of spacing h over [−half_width, half_width]² × [0, height] (x, y, z)."""
    g = np.arange(-half_width, half_width, h) + h / 2
    gx, gy, gz = np.meshgrid(g, np.arange(0.0, height, h) + h / 2, g, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1)


def _tube(center: np.ndarray, radius: float, height: float, test: ReposeTest) -> list[BoxCollider]:
    """Kinematic boxes (one cell thick) forming a polygonal tube of inner radius `radius` standing on the floor."""
    n, t = test.tube_segments, test.dx
    step = 2 * math.pi / n
    rc = radius + t  # the boxes' inner faces touch the circle of `radius`
    out = []
    for i in range(n):
        th = (i + 0.5) * step
        # Rotating the box frame by −θ about y turns its x axis (the thickness) to the radial direction.
        q = (0.0, math.sin(-th / 2), 0.0, math.cos(-th / 2))
        pos = (center[0] + rc * math.cos(th), center[1] + height / 2 + t, center[2] + rc * math.sin(th))
        out.append(BoxCollider(name=f"tube{i}", position=pos, rotation=q, kinematic=True,
                               half_size=(t, height / 2 + t, 1.1 * rc * math.tan(step / 2)),
                               friction=test.tube_friction))
    return out


def repose_scene(test: ReposeTest) -> tuple[Simulator, torch.Tensor | None, tuple[float, float, float]]:
    """Build the simulator of an angle-of-repose experiment.

    Returns:
        The simulator; the action of every step (the tube's lift, shape (segments, 6)) or None;
        the centre of the heap's base (x, floor height y, z) [m].
    """
    dx, t = test.dx, test
    h = dx / round(t.particles_per_cell ** (1 / 3))
    if t.procedure == "cone":
        top = t.radius * math.tan(math.radians(t.angle))
        p = _lattice(t.radius, top, h)
        p = p[p[:, 1] <= top * (1 - np.hypot(p[:, 0], p[:, 2]) / t.radius)]
    else:
        top = t.height
        p = _lattice(t.radius, top, h)
        p = p[np.hypot(p[:, 0], p[:, 2]) <= t.radius - 0.3 * h]
    reach = t.radius + t.runout + (2 * dx if t.procedure == "lift" else 0.0)
    n_xz = math.ceil(2 * reach / dx) + 8
    floor = 4 * dx
    n_y = math.ceil((floor + top) / dx) + 5
    off = t.axis_offset * dx
    center = np.array([n_xz * dx / 2 + off, floor, n_xz * dx / 2 + off])
    cfg = SceneConfig(dim=3, grid=(n_xz, n_y, n_xz), dx=dx, dt=t.dt, substeps=max(1, round(5e-3 / t.dt)),
                      boundary="slip")
    colliders = [PlaneCollider(name="floor", position=(0.0, floor, 0.0), friction=t.floor_friction)]
    action = None
    if t.procedure == "lift":
        colliders += _tube(center, t.radius, top, t)
        action = torch.zeros((t.tube_segments, 6), dtype=cfg.torch_dtype)
        action[:, 1] = t.lift_speed
    sand = Body(name="sand", shape=Particles(positions=p + center, volume=h**3), material=t.material)
    return Simulator(cfg, [sand], colliders), action, tuple(float(c) for c in center)


def settle(sim: Simulator, action, seconds: float, *, progress: bool = False, every: float = 0.0, probe=None):
    """Run the experiment for `seconds` [s] without gradients; return the final state.

    If ``every`` > 0, ``probe(state)`` is called every ``every`` seconds of simulated time (e.g.
    `flank_stress_state` to follow the stress state while the sand flows).
    """
    steps = max(1, round(seconds / sim.cfg.control_dt))
    stride = max(1, round(every / sim.cfg.control_dt)) if every > 0 else 0
    s = sim.reset()
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="sand heap", leave=False)
    with torch.no_grad():
        for i in it:
            s = sim.step(s, action)
            if stride and probe is not None and (i + 1) % stride == 0:
                probe(s)
    return s


def flank_stress_state(sim: Simulator, state, center, *, depth: float = 2.0, low: float = 0.2, high: float = 0.8,
                       v_min: float = 0.0, on_yield: float = 0.95) -> dict:
    """Stress state of the sand near the heap's flank surface (one `DruckerPrager` body).

    Particles are kept if they lie within ``depth`` cells under the top of their dx × dx column,
    between ``low`` and ``high`` times the heap height, move faster than ``v_min`` [m/s], and sit on
    the yield surface (‖dev τ‖ ≥ ``on_yield`` · α · (−tr τ)). With the principal Kirchhoff stresses
    as compressions σ₁ ≥ σ₂ ≥ σ₃ (σ = −τ), it reports the medians of the Lode parameter
    b = (σ₂ − σ₃)/(σ₁ − σ₃) (0: triaxial compression, where Klár's cone is Mohr–Coulomb(φ); 1:
    triaxial extension; 0.5 in plane-strain flow of this flow rule) and of the mobilised
    Mohr–Coulomb friction φ_m = asin((σ₁ − σ₃)/(σ₁ + σ₃)) [deg].

    Returns:
        dict with ``time`` [s], ``n`` (particles kept), ``fraction_on_yield`` (of the flank band),
        ``b`` and ``phi_m_deg`` (medians, NaN if none), ``b_q25``/``b_q75`` (quartiles).
    """
    body = sim.bodies[0]
    mat = body.material
    x = state.x.detach().double()
    F = state.F.detach().double()
    dx = sim.cfg.spacing
    y = x[:, 1] - center[1]
    key = torch.floor(x[:, 0] / dx).long() * (1 << 32) + torch.floor(x[:, 2] / dx).long()
    _, inv = torch.unique(key, return_inverse=True)
    top = torch.full((int(inv.max()) + 1,), -1e9, dtype=y.dtype).scatter_reduce(0, inv, y, "amax")
    h = float(y.max())
    band = (top[inv] - y < depth * dx) & (top[inv] > low * h) & (top[inv] < high * h)
    if v_min > 0:
        band &= state.v.detach().double().norm(dim=1) > v_min
    mu, lam = lame(sim.params[f"{body.name}.E"].double(), sim.params[f"{body.name}.nu"].double())
    s = torch.linalg.svdvals(F[band]).clamp_min(mat.sigma_min)
    eps = torch.log(s)
    tau = 2 * mu * eps + lam * eps.sum(1, keepdim=True)
    sig = torch.sort(-tau, dim=1, descending=True).values  # compressions σ₁ ≥ σ₂ ≥ σ₃
    dev = tau - tau.mean(1, keepdim=True)
    alpha = friction_alpha(float(sim.params[f"{body.name}.friction_angle"]), 3)
    yielded = dev.norm(dim=1) >= on_yield * alpha * (-tau.sum(1)).clamp_min(0) - 1e-12
    yielded &= tau.sum(1) < 0
    sig = sig[yielded]
    out = {"time": float(state.time), "n": int(yielded.sum()),
           "fraction_on_yield": float(yielded.double().mean()) if band.any() else float("nan")}
    if len(sig) == 0:
        return {**out, "b": float("nan"), "b_q25": float("nan"), "b_q75": float("nan"), "phi_m_deg": float("nan")}
    b = (sig[:, 1] - sig[:, 2]) / (sig[:, 0] - sig[:, 2]).clamp_min(1e-30)
    phi_m = torch.rad2deg(torch.asin(((sig[:, 0] - sig[:, 2]) / (sig[:, 0] + sig[:, 2])).clamp(-1, 1)))
    q = torch.quantile(b, torch.tensor([0.25, 0.5, 0.75], dtype=b.dtype))
    return {**out, "b": float(q[1]), "b_q25": float(q[0]), "b_q75": float(q[2]), "phi_m_deg": float(phi_m.median())}


def heap_angle(state, center, dx: float, method: str = "radial") -> float:
    """Flank angle [deg] of the heap around `center` (x, floor y, z) (`physim.mpm.diagnostics.cone_angle`)."""
    x = state.x.detach().cpu().double().numpy()
    return cone_angle(x[:, 0], x[:, 1] - center[1], x[:, 2], (center[0], center[2]), dx, method=method)
