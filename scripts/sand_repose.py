"""Angle of repose of a collapsed 2D sand column against the friction angle (docs/mpm.md, "Sand").

Runs the column collapse of `tests/mpm/test_mpm_physics.py` (0.24 m × 0.12 m, E 2e5 Pa,
ν 0.3, 1600 kg/m³, rough floor, 1 s) for each friction angle with the 2D cone physim uses
(α₂ = (3/2) α₃, Klár's 3D material in plane strain) and, for comparison in the same run,
with the 2D Mohr–Coulomb cone α = sin φ/√2 used before. Prints one table row and one JSON
line per run.

    .venv/bin/python scripts/sand_repose.py --phi 20 25 30 35 40 [--grid 128] [--cones plane_strain mohr_coulomb]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from tqdm import tqdm

import physim.mpm.materials.drucker_prager as dp
from physim.mpm import Body, Box, DruckerPrager, PlaneCollider, SceneConfig, Simulator
from physim.mpm.diagnostics import pile_angle

CONES = {
    "plane_strain": dp.friction_alpha,
    "mohr_coulomb": lambda phi, dim=3: (torch.sin(torch.deg2rad(phi)) if isinstance(phi, torch.Tensor)
                                        else math.sin(math.radians(phi))) / math.sqrt(2.0),
}


def collapse(phi: float, grid: int, seconds: float) -> dict:
    dt = 1e-4 * 128 / grid
    cfg = SceneConfig(dim=2, grid=(grid, grid * 3 // 8), dt=dt, substeps=round(5e-3 / dt), boundary="sticky")
    sand = Body(name="sand", shape=Box(center=(0.5, 0.16), size=(0.24, 0.12)),
                material=DruckerPrager(E=2e5, nu=0.3, friction_angle=phi, density=1.6e3), particles_per_cell=4)
    sim = Simulator(cfg, [sand], [PlaneCollider(name="floor", position=(0.0, 0.1, 0.0), friction=2.0)])
    s = sim.reset()
    with torch.no_grad():
        for _ in range(round(seconds / 5e-3)):
            s = sim.step(s)
    x, y = s.x[:, 0].numpy(), s.x[:, 1].numpy() - 0.1
    return {"angle_deg": pile_angle(x, y, cfg.spacing), "height_m": float(y.max()),
            "spread_m": float(x.max() - x.min()), "vmax_m_s": float(s.v.abs().max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phi", type=float, nargs="+", default=[20.0, 25.0, 30.0, 35.0, 40.0],
                    help="friction angles [deg]")
    ap.add_argument("--grid", type=int, default=128, help="grid nodes along x (dx = 1/grid m)")
    ap.add_argument("--seconds", type=float, default=1.0, help="simulated time [s]")
    ap.add_argument("--cones", nargs="+", default=list(CONES), choices=list(CONES))
    args = ap.parse_args()
    rows = []
    for phi in tqdm(args.phi, desc="friction angles"):
        for cone in args.cones:
            dp.friction_alpha = CONES[cone]  # table_row looks the function up at call time
            t0 = time.perf_counter()
            r = {"phi_deg": phi, "cone": cone, "grid": args.grid, **collapse(phi, args.grid, args.seconds),
                 "wall_s": time.perf_counter() - t0}
            rows.append(r)
            print(json.dumps(r), flush=True)
    dp.friction_alpha = CONES["plane_strain"]
    print(f"\n| φ [deg] | {' | '.join(f'{c} angle [deg]' for c in args.cones)} |")
    print("|---|" + "---|" * len(args.cones))
    for phi in args.phi:
        cells = [f"{r['angle_deg']:.1f}" for c in args.cones for r in rows if r["phi_deg"] == phi and r["cone"] == c]
        print(f"| {phi:g} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
