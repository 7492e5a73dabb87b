"""Evaluate trained NCLaw models and baselines on the unseen cases; print the error table.

Error: mean particle position error over the rollout relative to the ground-truth
displacement (see physim.operators.nclaw.evaluate). Trains what is missing first.

    .venv/bin/python scripts/nclaw_eval.py --materials jelly --variants invariant e3nn mlp analytic
"""

from __future__ import annotations

import argparse
import json
import logging

from physim.operators.nclaw.experiment import add_arguments, config_from_args, evaluate_all, format_table, train_one

from physim.io.atomic import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results: dict = {}
    for material in cfg.materials:
        for variant in cfg.variants:
            rec = train_one(cfg, material, variant)
            rec["errors"] = evaluate_all(cfg, material, variant)
            results.setdefault(material, {})[variant] = rec
    atomic_write_text(cfg.out / "eval.json", json.dumps(results, indent=2))
    print(format_table(results, cfg.cases))


if __name__ == "__main__":
    main()
