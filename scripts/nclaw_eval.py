"""Evaluate trained NCLaw models and baselines on the unseen cases; print the error table.

Error: mean particle position error over the rollout relative to the ground-truth
displacement (see physim.operators.nclaw.evaluate). Trains what is missing first.

    .venv/bin/python scripts/nclaw_eval.py --materials jelly --variants invariant e3nn mlp analytic
"""

from __future__ import annotations

import argparse
import logging

from physim.operators.nclaw.experiment import add_arguments, config_from_args, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(cfg)


if __name__ == "__main__":
    main()
