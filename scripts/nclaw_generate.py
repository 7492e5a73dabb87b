"""Generate the ground-truth trajectories of the NCLaw experiments with physim.mpm's analytic materials.

One HDF5 file per (material, case) under OUT/data (skipped when it exists):

    .venv/bin/python scripts/nclaw_generate.py --materials jelly plasticine --cases train shape
"""

from __future__ import annotations

import argparse
import logging

from physim.operators.nclaw.experiment import add_arguments, config_from_args, ground_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for material in cfg.materials:
        for case in cfg.cases:
            traj = ground_truth(material, case, cfg.spec, cfg.out / "data")
            print(f"{material:10s} {case:9s} {traj.x.shape[1]:5d} particles  {traj.steps:4d} steps")


if __name__ == "__main__":
    main()
