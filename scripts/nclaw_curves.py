"""Errors against training length: evaluate every snapshot of a run saved with --snapshot-every.

    .venv/bin/python scripts/bench_nclaw.py --out out/nclaw_long --materials jelly \\
        --variants analytic invariant --epochs 200 --snapshot-every 20
    .venv/bin/python scripts/nclaw_curves.py --out out/nclaw_long --materials jelly --variants analytic invariant

Writes OUT/curves/<material>.csv (one row per variant and snapshot epoch, the error on each
single-material case) and OUT/figures/<material>_curves.png (full-rollout loss per epoch,
snapshot errors, NCLaw / analytic ratios at equal epochs), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging

from physim.operators.nclaw.curves import plot_curves, read_metrics, snapshot_errors
from physim.operators.nclaw.experiment import add_arguments, config_from_args

from physim.io.atomic import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cases = [c for c in cfg.cases if c != "multi"]
    for material in cfg.materials:
        metrics = {v: read_metrics(cfg.run_dir(material, v)) for v in cfg.variants}
        errors = {v: snapshot_errors(cfg, material, v) for v in cfg.variants}
        errors = {v: rows for v, rows in errors.items() if rows}
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["variant", "epoch", *cases])
        for v, rows in errors.items():
            for r in rows:
                w.writerow([v, r["epoch"], *(f"{r[c]:.6g}" for c in cases)])
        (cfg.out / "curves").mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg.out / "curves" / f"{material}.csv", buf.getvalue())
        plot_curves(material, {v: m for v, m in metrics.items() if m}, errors, cases,
                    cfg.out / "figures" / f"{material}_curves.png")
        ana = {r["epoch"]: r for r in errors.get("analytic", [])}
        print(f"**{material}**: error per snapshot epoch (ratio to the analytic model's at the same epoch)\n")
        print("| model | epoch | " + " | ".join(cases) + " |")
        print("|---|---|" + "---|" * len(cases))
        for v, rows in errors.items():
            for r in rows:
                a = ana.get(r["epoch"])
                cells = [f"{r[c]:.3g}" + (f" ({r[c] / a[c]:.3g}×)" if a and v != "analytic" and a[c] > 0 else "")
                         for c in cases]
                print(f"| {v} | {r['epoch']} | " + " | ".join(cells) + " |")
        print(f"\nfiles: {cfg.out / 'curves' / (material + '.csv')}, "
              f"{cfg.out / 'figures' / (material + '_curves.png')}")


if __name__ == "__main__":
    main()
