"""Angle of repose of sand heaps against the friction angle, in 2D and 3D (docs/mpm.md, "Sand").

2D (default): runs the column collapse of `tests/mpm/test_mpm_physics.py` (0.24 m × 0.12 m, E 2e5 Pa,
ν 0.3, 1600 kg/m³, rough floor, 1 s) for each friction angle with the 2D cone physim uses
(α₂ = (3/2) α₃, Klár's 3D material in plane strain) and, for comparison in the same run,
with the 2D Mohr–Coulomb cone α = sin φ/√2 used before. Prints one table row and one JSON
line per run.

    .venv/bin/python scripts/sand_repose.py --phi 20 25 30 35 40 [--grid 128] [--cones plane_strain mohr_coulomb]

3D (``--dim 3``): axisymmetric heaps made by the procedures of `physim.mpm.repose` (a cone built
at ``--angle``, the lifting-cylinder test, a column collapse), flank measured on the radial
profile and, for comparison, by a direct fit over the surface columns:

    .venv/bin/python scripts/sand_repose.py --dim 3 --procedure lift collapse cone --phi 30 [--dx 0.015625]

``--offsets 0 0.5`` repeats each heap with its axis shifted by half a cell (grid-alignment
scatter); ``--lode-every 0.1`` logs the flank's Lode parameter b and mobilised friction φ_m
every 0.1 s while the sand flows (`physim.mpm.repose.flank_stress_state`). Heaps need about
8 cells of height to reach φ within 5° (docs/mpm.md, "Sand in 3D, resolved").
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from tqdm import tqdm

import physim.mpm.materials.drucker_prager as dp
from physim.mpm import Body, Box, DruckerPrager, PlaneCollider, SceneConfig, Simulator
from physim.mpm.diagnostics import pile_angle
from physim.mpm.repose import PROCEDURES, ReposeTest, flank_stress_state, heap_angle, repose_scene, settle

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


def heap3d(phi: float, args, procedure: str, offset: float = 0.0) -> dict:
    mat = DruckerPrager(E=2e5, nu=0.3, friction_angle=phi, density=1.6e3)
    test = ReposeTest(procedure=procedure, material=mat, radius=args.radius, height=args.height, angle=args.angle,
                      lift_speed=args.lift_speed, dx=args.dx, dt=args.dt, axis_offset=offset,
                      runout=args.runout if args.runout is not None else 0.13)
    seconds = args.seconds if procedure != "lift" else args.seconds + (test.height + test.dx) / test.lift_speed
    sim, action, center = repose_scene(test)
    lode = []

    def probe(state):
        r = flank_stress_state(sim, state, center, v_min=args.lode_vmin)
        r["angle_deg"] = heap_angle(state, center, test.dx)
        lode.append(r)
        print(json.dumps({"lode": r}), flush=True)

    t0 = time.process_time()
    s = settle(sim, action, seconds, progress=True, every=args.lode_every, probe=probe)
    x = s.x.double().numpy()
    h = float(x[:, 1].max() - center[1])
    return {"axis_offset": offset, "heap_cells": h / test.dx, "lode_final": flank_stress_state(sim, s, center),
            "angle_deg": heap_angle(s, center, test.dx), "angle_columns_deg": heap_angle(s, center, test.dx, "columns"),
            "height_m": float(x[:, 1].max() - center[1]),
            "spread_m": float(np.hypot(x[:, 0] - center[0], x[:, 2] - center[2]).max()),
            "vmax_m_s": float(s.v.abs().max()), "particles": len(x), "grid": list(sim.cfg.resolution),
            "simulated_s": seconds, "cpu_s": time.process_time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phi", type=float, nargs="+", default=[20.0, 25.0, 30.0, 35.0, 40.0],
                    help="friction angles [deg]")
    ap.add_argument("--grid", type=int, default=128, help="grid nodes along x (dx = 1/grid m)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="simulated time [s] (3D lift: settling time after the tube is out)")
    ap.add_argument("--cones", nargs="+", default=list(CONES), choices=list(CONES))
    ap.add_argument("--dim", type=int, default=2, choices=(2, 3))
    ap.add_argument("--procedure", nargs="+", default=["lift"], choices=PROCEDURES, help="3D: how the heap is made")
    ap.add_argument("--dx", type=float, default=1 / 64, help="3D: grid spacing [m]")
    ap.add_argument("--dt", type=float, default=2e-4, help="3D: substep [s]")
    ap.add_argument("--radius", type=float, default=0.12, help="3D: tube / column radius, or cone base radius [m]")
    ap.add_argument("--height", type=float, default=0.12, help="3D: column height [m]")
    ap.add_argument("--angle", type=float, default=40.0, help="3D cone: initial slope [deg]")
    ap.add_argument("--lift-speed", type=float, default=0.1, help="3D lift: tube speed [m/s]")
    ap.add_argument("--offsets", type=float, nargs="+", default=[0.0],
                    help="3D: shifts of the heap axis in cells (e.g. 0 0.5: average out the grid alignment)")
    ap.add_argument("--runout", type=float, default=None, help="3D: room around the footprint [m] (default 0.13)")
    ap.add_argument("--lode-every", type=float, default=0.0,
                    help="3D: log the flank's Lode parameter b and mobilised friction every this many seconds")
    ap.add_argument("--lode-vmin", type=float, default=0.01, help="3D: flowing particles only: speed above [m/s]")
    args = ap.parse_args()
    if args.dim == 3:
        rows = []
        for phi in tqdm(args.phi, desc="friction angles"):
            for proc in args.procedure:
                for off in args.offsets:
                    r = {"phi_deg": phi, "procedure": proc, "dx": args.dx, **heap3d(phi, args, proc, off)}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        print("\n| φ [deg] | procedure | axis offset [cells] | flank, radial profile [deg] "
              "| flank, surface columns [deg] | height [m] | height [cells] | flank b |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['phi_deg']:g} | {r['procedure']} | {r['axis_offset']:g} | {r['angle_deg']:.1f} "
                  f"| {r['angle_columns_deg']:.1f} | {r['height_m']:.3f} | {r['heap_cells']:.1f} "
                  f"| {r['lode_final']['b']:.2f} |")
        return
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
