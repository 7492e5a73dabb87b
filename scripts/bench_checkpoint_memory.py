"""Peak memory and time of a differentiable 2000-step chain rollout versus the checkpoint interval K.

Each configuration runs in its own process (physim._src.memprobe) so that peaks do
not mix; the baseline is the same rollout without checkpointing, measured in the same
run. Ratios, not absolute numbers, are what carry over between machines.

    .venv/bin/python scripts/bench_checkpoint_memory.py --backends warp taichi --ks 0 10 50 200
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def probe(backend: str, k: int, steps: int, particles: int) -> dict:
    cmd = [sys.executable, "-m", "physim._src.memprobe", "--backend", backend, "--steps", str(steps),
           "--checkpoint-every", str(k), "--particles", str(particles)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["warp", "taichi"])
    ap.add_argument("--ks", nargs="+", type=int, default=[0, 10, 50, 200], help="0 = no checkpointing (baseline)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--particles", type=int, default=1000)
    a = ap.parse_args()
    print("| backend | device | K | stored states | peak memory [MB] | memory / baseline | time [s] "
          "| time / baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in a.backends:
        base = probe(backend, 0, a.steps, a.particles)
        for k in a.ks:
            r = base if k == 0 else probe(backend, k, a.steps, a.particles)
            mem, sec = r["peak_bytes"], r["seconds"]
            print(f"| {backend} | {r['device']} | {k or 'none'} | {r['checkpoints']} | {mem / 1e6:.1f} | "
                  f"{mem / base['peak_bytes']:.3f} | {sec:.2f} | {sec / base['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
