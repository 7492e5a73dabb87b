"""Train NCLaw (and the baselines) on ONE ground-truth trajectory per material, through physim.mpm.

Teacher forcing with a window growing to full rollouts; Adam, cosine learning rate,
atomic checkpoints: run the same command again to resume an interrupted run.

    .venv/bin/python scripts/nclaw_train.py --materials jelly --variants invariant mlp --epochs 30

The learned law lands in OUT/runs/<material>/<variant>/law.pt; load it into any scene
with ``physim.operators.nclaw.load_material(path)``.
"""

from __future__ import annotations

import argparse
import logging

from physim.operators.nclaw.experiment import add_arguments, config_from_args, train_one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for material in cfg.materials:
        for variant in cfg.variants:
            rec = train_one(cfg, material, variant)
            print(f"{material:10s} {variant:9s} {rec['train_seconds']:7.1f} s  full-rollout loss "
                  f"{rec['best_full_rollout_loss']:.4g} dx²  -> {rec['path']}"
                  + (f"  [{rec['stopped']}]" if rec["stopped"] else ""))


if __name__ == "__main__":
    main()
