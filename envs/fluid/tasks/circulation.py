"""Circulation: steer an air conditioner so that two zones of a hot room cool down and a third stays warm.

The air is physim.gas's Eulerian grid (Taichi) in FluidLab's configuration
(`physim.gas.circulation_config`): only a horizontal slab of air at mid-height is free,
simulated on a slab-shaped grid (32 × 2 × 32 cells at ``cpu`` quality, FluidLab's
128 × 7 × 128 at ``paper``), dt 0.03 s per control step, 50 Jacobi sweeps. Temperature is
the grid's smoke channel 0 (1 hot, 0 cold); the room starts hot everywhere. The aircon
blows cold air (FluidLab's exponential "aircon" profile, radius 2 cells) along FluidLab's
``inject_v`` (−0.3, 0, 1) turned by its yaw.

FluidLab's room walls come from a mesh (``room.obj``) that is not distributed; physim's
room has one wall along z = 0.5 from the west wall to x = 0.4, which shields the warm zone
(north-west) from the cold zones (south-west and east) but for the opening east of it.
The loss reads FluidLab's 15 detectors (its cell indices on the 128 grid, as positions),
interpolated trilinearly: the first five, in the north-west zone, should stay at 1, the
other ten reach 0.

Action: the aircon's horizontal velocity (vx, vz) [m/s] and yaw rate [rad/s], each
bounded by FluidLab's 0.1 per 0.03 s step, and its strength in FluidLab's grid units
(cells/s², |s| ≤ 10⁴; converted with the grid's cell size, as the gas preset does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from physim.envs.fluid.spec import ToolSpec

__all__ = ["DETECTORS", "GasTask", "GasTaskSpec", "circulation", "gas_obs_dim", "gas_resolution"]

#: FluidLab's detector cells (x, z) on its 128-cell grid at y-cell 64: 5 in the zone to keep warm, then 10 to cool.
DETECTORS = ((25, 85), (35, 85), (15, 85), (25, 75), (25, 95),
             (25, 42), (35, 42), (15, 42), (25, 32), (25, 52),
             (107, 65), (115, 65), (99, 65), (107, 45), (107, 85))
WARM = 5
SAMPLES = 8  # observed temperature/velocity samples per horizontal axis
STRENGTH_MAX = 1e4  # cells/s², FluidLab's action bound 0.1 × scale 1e5
INJECT = (-0.3, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class GasTaskSpec:
    """Circulation at one quality (the gas counterpart of `TaskSpec`)."""

    name: str
    description: str
    quality: str
    horizon: int
    control_dt: float
    tools: tuple[ToolSpec, ...]
    loss_doc: str
    strength_max: float = STRENGTH_MAX

    @property
    def action_dim(self) -> int:
        return 4

    @property
    def action_high(self) -> np.ndarray:
        return np.array([*self.tools[0].limits, self.strength_max], dtype=np.float32)

    @property
    def action_low(self) -> np.ndarray:
        return -self.action_high

    @property
    def dim(self) -> int:
        return 3

    def build(self, *, dtype: torch.dtype, device: torch.device) -> GasTask:
        return GasTask(self, dtype=dtype, device=device)


def gas_obs_dim() -> int:
    """Observation size: temperature and velocity at SAMPLES² points, then the aircon's pose (7)."""
    return SAMPLES * SAMPLES * 4 + 7


def gas_resolution(quality: str) -> tuple[int, ...]:
    """Cells of Circulation's slab grid at a gas quality preset (no simulator is built)."""
    from physim.gas import circulation_config

    return tuple(circulation_config(quality, slab=True).resolution)


def circulation(quality, *, horizon: int | None = None) -> GasTaskSpec:
    """Cool the south-west and east zones of a hot room with a movable aircon; keep the north-west zone warm."""
    from physim.envs.fluid.tasks.common import horizon_of

    dt = 0.03
    lim = 0.1 / dt  # FluidLab: 0.1 per step
    tool = ToolSpec(name="aircon", position=(0.55, 0.5, 0.35), dofs=("vx", "vz", "wy"), limits=(lim, lim, lim),
                    workspace=((0.05, 0.5, 0.05), (0.95, 0.5, 0.95)))
    return GasTaskSpec(
        name="Circulation", quality=quality.gas, horizon=horizon_of("Circulation", horizon), control_dt=dt,
        description="steer an air conditioner to cool two zones of a hot room and keep a third warm",
        tools=(tool,),
        loss_doc="mean over FluidLab's 15 detectors of |T − T_goal| (1 for the 5 north-west ones, 0 otherwise)",
    )


def _trilinear(field: torch.Tensor, pts: torch.Tensor, lower, h: float) -> torch.Tensor:
    """Values of a cell-centred field (nx, ny, nz, c) at points (n, 3) [m], clamped to the cell centres."""
    res = torch.tensor(field.shape[:3], device=pts.device)
    g = (pts - torch.as_tensor(lower, dtype=pts.dtype, device=pts.device)) / h - 0.5
    g = torch.minimum(torch.maximum(g, torch.zeros_like(g)), (res - 1).to(g.dtype))
    i0 = torch.minimum(g.floor().long(), (res - 2).clamp(min=0))
    f = g - i0.to(g.dtype)
    out = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                ix = torch.minimum(i0[:, 0] + dx, res[0] - 1)
                iy = torch.minimum(i0[:, 1] + dy, res[1] - 1)
                iz = torch.minimum(i0[:, 2] + dz, res[2] - 1)
                w = ((f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1])
                     * (f[:, 2] if dz else 1 - f[:, 2]))
                out = out + w[:, None] * field[ix, iy, iz]
    return out


class GasTask:
    """Runtime of Circulation: the state is ``(GasState, fan)`` with fan = (x, z, yaw, strength [m/s²])."""

    def __init__(self, spec: GasTaskSpec, *, dtype: torch.dtype, device: torch.device):
        try:
            from physim.gas import GasSimulator, circulation_config
        except ImportError as exc:
            raise ImportError("Circulation needs physim.gas (the Eulerian gas grid), which this installation "
                              "lacks") from exc

        self.spec = spec
        self.dtype, self.device = dtype, torch.device(device)
        cfg = circulation_config(spec.quality, slab=True, dtype="float32" if dtype == torch.float32 else "float64")
        self.cfg = cfg
        h = cfg.cell_size
        self.h = h
        lower = cfg.lower
        centers_x = (np.arange(cfg.resolution[0]) + 0.5) * h + lower[0]
        centers_z = (np.arange(cfg.resolution[2]) + 0.5) * h + lower[2]
        X, Z = np.meshgrid(centers_x, centers_z, indexing="ij")
        wall = (np.abs(Z - 0.5) < max(h, 1 / 64)) & (X < 0.4)  # the wall along z = 0.5, west of x = 0.4
        solid = torch.as_tensor(np.broadcast_to(wall[:, None, :], tuple(cfg.resolution)).copy())
        self.wall = wall
        self.sim = GasSimulator(cfg, solid=solid, device=self.device)
        opts = {"dtype": dtype, "device": self.device}
        y_mid = lower[1] + cfg.extent[1] / 2
        self.y = y_mid
        det = np.array([[(i + 0.5) / 128, 64.5 / 128, (k + 0.5) / 128] for i, k in DETECTORS])
        det[:, 1] = min(max(det[:, 1][0], lower[1] + h / 2), lower[1] + cfg.extent[1] - h / 2)
        self.detectors = torch.as_tensor(det, **opts)
        self.target = torch.as_tensor([1.0] * WARM + [0.0] * (len(DETECTORS) - WARM), **opts)
        s = (np.arange(SAMPLES) + 0.5) / SAMPLES
        SX, SZ = np.meshgrid(s, s, indexing="ij")
        self.samples = torch.as_tensor(np.stack([SX.ravel(), np.full(SX.size, y_mid), SZ.ravel()], -1), **opts)
        self.lo = torch.tensor([0.05, 0.05], **opts)
        self.hi = torch.tensor([0.95, 0.95], **opts)
        t = spec.tools[0]
        self.initial_fan = torch.tensor([t.position[0], t.position[2], 0.0, 2000.0], **opts)
        self.inject = torch.tensor(INJECT, **opts)
        self.obs_dim = gas_obs_dim()

    # -- functional interface -------------------------------------------------------------------
    def initial_state(self):
        smoke = torch.ones(*self.cfg.resolution, 1, dtype=self.dtype, device=self.device)
        return self.sim.reset(smoke=smoke), self.initial_fan.clone()

    def steps_taken(self, state) -> int:
        return round(float(state[0].time.detach()) / self.spec.control_dt)

    def transition(self, state, action: torch.Tensor, *params):
        gas, fan = state
        a = action.to(self.dtype)
        dt = self.spec.control_dt
        xz = torch.minimum(torch.maximum(fan[:2] + dt * a[:2], self.lo), self.hi)
        yaw = fan[2] + dt * a[2]
        new_fan = torch.cat([xz, yaw.reshape(1), a[3].reshape(1)])
        c, s = torch.cos(yaw), torch.sin(yaw)
        d = self.inject
        direction = torch.stack([c * d[0] + s * d[2], d[1] + 0 * yaw, -s * d[0] + c * d[2]])
        center = torch.stack([xz[0], torch.full_like(xz[0], self.y), xz[1]])
        fan_row = self.sim.fan_action(center=center[None], direction=direction[None],
                                      strength=(a[3] * self.h).reshape(1, 1))
        return self.sim.step(gas, fan_row), new_fan

    def temperatures(self, state) -> torch.Tensor:
        """Temperature at FluidLab's 15 detectors, (15,)."""
        return _trilinear(state[0].smoke, self.detectors, self.cfg.lower, self.h)[:, 0]

    def step_loss(self, t: int, state) -> torch.Tensor:
        return (self.temperatures(state) - self.target).abs().mean()

    def observe(self, state) -> torch.Tensor:
        """Temperature and cell velocity [m/s] at an 8 × 8 lattice of the slab's mid-plane, then the aircon's
        pose (position [m], yaw as a quaternion about y)."""
        gas, fan = state
        temp = _trilinear(gas.smoke, self.samples, self.cfg.lower, self.h)
        vel = _trilinear(self.sim.cell_velocity(gas), self.samples, self.cfg.lower, self.h)
        half = 0.5 * fan[2]
        pose = torch.stack([fan[0], torch.full_like(fan[0], self.y), fan[1], 0 * half, torch.sin(half), 0 * half,
                            torch.cos(half)])
        return torch.cat([temp.flatten(), vel.flatten(), pose])

    def memory_estimate(self) -> tuple[float, float]:
        b = 4 if self.dtype == torch.float32 else 8
        cells = int(np.prod(self.cfg.resolution))
        state = cells * 5 * b
        return float(state), float(10 * state)

    # -- picture --------------------------------------------------------------------------------
    def frame(self, state, size: int = 256, caption: str = "") -> np.ndarray:
        """Top view of the slab's temperature (blue cold, red hot), the wall, detectors and the aircon."""
        gas, fan = state
        q = gas.smoke[:, :, :, 0].detach().mean(1).cpu().numpy()  # (nx, nz)
        cold, hot = np.array([0.2, 0.4, 0.95]), np.array([0.95, 0.3, 0.2])
        img = cold + np.clip(q, 0, 1)[..., None] * (hot - cold)
        img[self.wall] = 0.35
        n = q.shape[0]
        rep = max(1, size // n)
        img = np.repeat(np.repeat(img, rep, 0), rep, 1)  # rows = x, columns = z
        img = np.transpose(img, (1, 0, 2))[::-1]  # x to the right, z up
        out = np.full((size, size, 3), 0.9)
        m = min(size, img.shape[0])
        out[:m, :m] = img[:m, :m]
        scale = rep * n

        def px(x, z):
            return int(np.clip(x * scale, 0, size - 1)), int(np.clip((1 - z) * scale, 0, size - 1))

        for k, (i, j) in enumerate(DETECTORS):
            c, r = px((i + 0.5) / 128, (j + 0.5) / 128)
            out[max(0, r - 1):r + 2, max(0, c - 1):c + 2] = (1, 1, 1) if k < WARM else (0, 0, 0)
        f = fan.detach().cpu().numpy().astype(float)
        c, r = px(f[0], f[1])
        out[max(0, r - 3):r + 4, max(0, c - 3):c + 4] = (0.1, 0.9, 0.2)
        d = np.array([math.cos(f[2]) * INJECT[0] + math.sin(f[2]) * INJECT[2],
                      -math.sin(f[2]) * INJECT[0] + math.cos(f[2]) * INJECT[2]])
        d /= np.linalg.norm(d)
        for s in np.linspace(0, 0.08, 12):
            cc, rr = px(f[0] + s * d[0], f[1] + s * d[1])
            out[rr, cc] = (0.1, 0.9, 0.2)
        img8 = (np.clip(out, 0, 1) * 255).astype(np.uint8)
        if caption:
            from physim.envs.fluid.render import _caption

            img8 = _caption(img8, caption)
        return img8

    @property
    def needs_goal(self) -> bool:
        return False

    def demo_actions(self, horizon: int | None = None) -> torch.Tensor:
        """FluidLab's scripted aircon: turning at 0.1 rad per step at its starting strength."""
        T = self.spec.horizon if horizon is None else horizon
        a = torch.zeros(T, 4, dtype=self.dtype, device=self.device)
        a[:, 2] = 0.1 / self.spec.control_dt
        a[:, 3] = 2000.0
        return a


