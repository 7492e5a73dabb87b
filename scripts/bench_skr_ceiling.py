"""How far can recycling go? Products with A per system of GCRO-DR(m, k) over a sorted sequence.

    .venv/bin/python scripts/bench_skr_ceiling.py                          # Darcy 100², 40 systems, IC(0)
    .venv/bin/python scripts/bench_skr_ceiling.py --precond none --size 64

SKR's speed-up over GMRES from scratch is at most its ratio of products with A (the preconditioned
operator A M⁻¹), unless a GCRO-DR product costs less than a GMRES one, and it costs more (the k recycled
directions are orthogonalised against at every step). This script measures that ratio for a sweep
of cycle lengths m and recycled dimensions k, on the SKR-sorted sequence of bench_solvers.py's
part (a) (same generator, same seed, same sort), so the ceiling of the CPU-time speed-up in a given
configuration is read off without timing anything. The baseline is physim's GMRES(40) on GCRO-DR's
own Arnoldi process (bench_solvers.py's baseline 2). Every solve is checked to have converged.

Output: a Markdown table on stdout and JSON in <out>/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from physim.io.atomic import atomic_write_text
from physim.solvers.preconditioners import PRECONDITIONERS, build_preconditioner
from physim.solvers.problems import darcy_coefficient, darcy_matrix, gaussian_random_field
from physim.solvers.recycling import RecycleSpace
from physim.solvers.skr import skr_features, solve_sequence, sort_systems

DEFAULT_SWEEP = "40:5,40:10,40:20,60:20,60:40,80:60,120:100"


def parse_sweep(text: str) -> list[tuple[int, int]]:
    """``"m:k,m:k"`` → [(m, k), ...] with 0 < k < m."""
    out = []
    for item in text.split(","):
        try:
            m, k = (int(v) for v in item.split(":"))
        except ValueError:
            raise SystemExit(f"--sweep: {item!r} is not m:k (two integers)") from None
        if not 0 < k < m:
            raise SystemExit(f"--sweep: {item!r} needs 0 < k < m")
        out.append((m, k))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100, help="grid points per axis (unknowns = size²)")
    p.add_argument("--systems", type=int, default=40)
    p.add_argument("--precond", default="ichol", choices=("none", *PRECONDITIONERS))
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--sweep", default=DEFAULT_SWEEP, help="m:k pairs of GCRO-DR(m, k)")
    p.add_argument("--warm-start", action="store_true",
                   help="start every GCRO-DR solve from the previous system's solution (default: zero)")
    p.add_argument("--out", type=Path, default=Path("out/bench_skr_ceiling"))
    args = p.parse_args(argv)
    if args.size < 8 or args.systems < 2:
        raise SystemExit(f"--size {args.size} / --systems {args.systems}: expected ≥ 8 and ≥ 2")
    sweep = parse_sweep(args.sweep)

    fields = gaussian_random_field(args.systems, args.size, rng=0)
    order = sort_systems(skr_features(fields), method="greedy")
    mats = [darcy_matrix(darcy_coefficient(fields[i])) for i in order]
    rhs = np.ones((args.systems, args.size**2))
    pcs = {} if args.precond == "none" else {id(A): build_preconditioner(args.precond, A) for A in mats}
    factory = (lambda A: pcs[id(A)]) if pcs else None

    rows = []
    with threadpool_limits(1):
        runs = [("GMRES(40) from scratch (baseline 2)", 40, 0)] + [(f"GCRO-DR({m}, {k}) carried", m, k)
                                                                  for m, k in sweep]
        for label, m, k in runs:
            c0 = time.process_time()
            if k == 0:
                seq = solve_sequence(mats, rhs, rtol=args.rtol, m=m, recycle=False, M=factory,
                                     method="gmres_arnoldi")
            else:
                seq = solve_sequence(mats, rhs, rtol=args.rtol, m=m, k=k, space=RecycleSpace(k=k), M=factory,
                                     warm_start=args.warm_start)
            cpu = time.process_time() - c0
            if not seq.converged.all():
                raise SystemExit(f"{label}: {int((~seq.converged).sum())} systems did not converge")
            its = seq.iterations
            rows.append({"variant": label, "m": m, "k": k, "products_mean": float(its.mean()),
                         "products_second_half": float(its[len(its) // 2:].mean()), "products_min": int(its.min()),
                         "cpu_seconds": cpu})
            print(f"  {label}: {its.mean():.1f} products/system, {cpu:.1f} s CPU", flush=True)
    base = rows[0]
    for r in rows:
        r["iteration_ratio"] = base["products_mean"] / r["products_mean"]
        r["cpu_ratio"] = base["cpu_seconds"] / r["cpu_seconds"]
    best = max(rows[1:], key=lambda r: r["iteration_ratio"])

    lines = [f"Darcy {args.size}² = {args.size**2} unknowns, {args.systems} systems (SKR-sorted), "
             f"precond {args.precond}, rtol {args.rtol:g}, warm start {args.warm_start}", "",
             "| variant | products / system | (second half) | min | iteration ratio vs baseline 2 | "
             "CPU [s] | CPU ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['products_mean']:.1f} | {r['products_second_half']:.1f} | "
                     f"{r['products_min']} | {r['iteration_ratio']:.2f}× | {r['cpu_seconds']:.1f} | "
                     f"{r['cpu_ratio']:.2f}× |")
    lines += ["", f"Best iteration ratio (the ceiling of the CPU speed-up at equal cost per product): "
              f"{best['iteration_ratio']:.2f}× ({best['variant']})."]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
