"""NCLaw benchmark: per material, training time and generalisation error of NCLaw-invariant,
NCLaw-e3nn, the plain-MLP baseline and the fitted analytic model, all trained in this run on
the same single trajectory.

    .venv/bin/python scripts/bench_nclaw.py --out out/bench_nclaw --epochs 40

Writes OUT/results.json, OUT/results.md (the tables of docs/benchmarks.md) and
OUT/figures/<material>.png (last frame of each case: ground truth vs models). Every
stage is cached under OUT: rerunning resumes (training times add up over resumptions).
Ratios compare models trained in the same run; absolute times depend on the machine
(this one is a shared 2-core CPU: expect noise).
"""

from __future__ import annotations

import argparse
import logging

from physim.operators.nclaw.experiment import add_arguments, config_from_args, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.set_defaults(out="out/bench_nclaw", epochs=40)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(cfg)


if __name__ == "__main__":
    main()
