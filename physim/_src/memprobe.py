"""Measure the peak memory of a differentiable chain rollout (forward + backward).

Run as a separate process so the peak belongs to one configuration only::

    python -m physim._src.memprobe --backend warp --steps 2000 --checkpoint-every 50

Prints one JSON line: ``{"backend", "steps", "checkpoint_every", "peak_bytes",
"checkpoints", "seconds"}`` where ``peak_bytes`` is the rise of the process's peak
resident set size (CPU; VmHWM − VmRSS before the rollout, with the peak reset
after warm-up through /proc/self/clear_refs) or torch's peak CUDA
allocation (GPU) during the measured rollout and its backward pass. Used by the
checkpoint-memory test and by scripts/bench_checkpoint_memory.py.
"""

from __future__ import annotations

import argparse
import json
import time


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS, so the warm-up's peak does not count (Linux >= 4.0).

    Freed heap pages are handed back first (malloc_trim): pages the allocator keeps
    resident would otherwise absorb part of the measured run's allocations unseen.
    """
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    if _status_kib("VmHWM") > _status_kib("VmRSS") * 1.05 + 1024:
        raise RuntimeError("could not reset the peak resident set size (/proc/self/clear_refs)")


def peak_memory(fn, *, cuda: bool):
    """Run ``fn()`` and return ``(its result, peak bytes above the start, seconds)``.

    The peak is torch's peak CUDA allocation on a GPU, the peak resident set size
    (reset first) on a CPU. Call it after a warm-up, in a process of its own.
    """
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        base = _status_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if cuda else _status_kib("VmHWM") * 1024 - base
    return result, int(peak), seconds


def measure(backend: str, steps: int, checkpoint_every: int | None, particles: int, substeps: int) -> dict:
    import torch

    from physim.springs import ChainConfig, TaichiChain, WarpChain

    cls = {"warp": WarpChain, "taichi": TaichiChain}[backend]
    sim = cls(ChainConfig(particle_count=particles, substeps=substeps, stiffness=50.0, damping=0.05))
    sim.params["stiffness"].requires_grad_(True)
    s0 = sim.reset()
    gen = torch.Generator().manual_seed(0)
    actions = 1e-3 * torch.randn(steps, particles, 2, generator=gen, dtype=torch.float64)
    x0 = s0.x.clone().requires_grad_(True)
    s0 = type(s0)(x=x0, v=s0.v, time=s0.time)

    def run(n: int):
        out = sim.rollout(s0, actions[:n], checkpoint_every=checkpoint_every)
        loss = out.state.x[-1].sum()
        loss.backward()
        return out.checkpoints

    run(min(steps, 3))  # compile kernels; short, so it leaves little freed memory behind
    sim.params["stiffness"].grad = None
    stored, peak, seconds = peak_memory(lambda: run(steps), cuda=sim.device.type == "cuda")
    return {
        "backend": backend,
        "device": str(sim.device),
        "steps": steps,
        "checkpoint_every": checkpoint_every,
        "particles": particles,
        "peak_bytes": int(peak),
        "checkpoints": stored,
        "seconds": round(seconds, 3),
        "stiffness_grad": float(sim.params["stiffness"].grad),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("warp", "taichi"), required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--checkpoint-every", type=int, default=0, help="K; 0 = no checkpointing")
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--substeps", type=int, default=2)
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.backend, a.steps, a.checkpoint_every or None, a.particles, a.substeps)))


if __name__ == "__main__":
    main()
