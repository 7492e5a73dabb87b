"""Generate an MPM Lagrangian dataset (jelly, plasticine, sand, water, non-Newtonian fluid).

Purpose: the script face of `physim data mpm` (same options, same validation, same exit
status): random scenes simulated with `physim.mpm`, written as HDF5 shards with train/valid/
test splits and a manifest (schema: docs/giorom.md), in parallel worker processes with a
progress bar, deterministic per seed, resumable.

Commands:

    python scripts/gen_mpm_dataset.py --preset cpu-2d --out data/mpm-cpu-2d --workers 2
    python scripts/gen_mpm_dataset.py --preset cpu-3d --out data/mpm-cpu-3d --workers 2
    python scripts/gen_mpm_dataset.py --preset paper --out data/mpm-paper     # GPU, hours
    python scripts/gen_mpm_dataset.py --help
"""

from __future__ import annotations

import sys

from physim.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "mpm", *sys.argv[1:]]))
