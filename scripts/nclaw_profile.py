"""Where one NCLaw training epoch spends its CPU time (process time per part; optional cProfile).

    .venv/bin/python scripts/nclaw_profile.py --variant invariant --window 5 --repeat 3
    .venv/bin/python scripts/nclaw_profile.py --ab 10 --repeat 6     # A/B: checkpointed every 10 vs not

Builds the benchmark's training scene (default 2D jelly, 32² grid, ~256 particles, 40 control
steps × 5 substeps), and runs what one epoch of `physim.operators.nclaw.fit` runs, without
the optimizer step: the windowed rollout loss, its backward, and the full-rollout validation.
The process time is split by timing wrappers into the learned law's forward (stress, plastic
projection), the Warp transfers' forward and backward (the bridge's `_WarpFunction`, kernels
included), each marked "[in backward]" when it ran inside ``loss.backward()`` (checkpoint
recomputation), torch's autograd engine (the network's backward) and the rest (Python glue).
``--ab K`` instead times whole epochs interleaved, checkpointed every K steps (A) against
``--checkpoint-every`` (B, default 0: no checkpoints), and compares their gradients.
Nothing is written but the printed table.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import uuid
from pathlib import Path


class _Timers:
    """Process time per category, split by whether it ran inside ``loss.backward()`` (recomputation)."""

    def __init__(self):
        self.t: dict[str, float] = {}
        self.in_backward = False
        self.depth = 0

    def add(self, key: str, dt: float) -> None:
        key = f"{key} [in backward]" if self.in_backward else key
        self.t[key] = self.t.get(key, 0.0) + dt

    def wrap(self, key: str, fn):
        def timed(*a, **kw):
            if self.depth:  # nested timed calls are counted by the outer one
                return fn(*a, **kw)
            self.depth += 1
            c = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                self.depth -= 1
                self.add(key, time.process_time() - c)
        return timed


def _ab(sim, model, traj, spec, args) -> None:
    """Interleaved A/B of whole epochs: CPU time and gradients, A = checkpointed every `args.ab`, B = the setting."""
    import statistics

    import torch
    from physim.operators.nclaw.fit import window_loss

    def epoch(k: int) -> tuple[float, list[torch.Tensor], float]:
        model.zero_grad(set_to_none=True)
        c = time.process_time()
        loss = window_loss(sim, model, traj, args.window, k)
        loss.backward()
        with torch.no_grad():
            window_loss(sim, model, traj, spec.steps, k)
        return time.process_time() - c, [p.grad.clone() for p in model.parameters()], float(loss.detach())

    epoch(args.ab), epoch(args.checkpoint_every)  # warm-up
    ta, tb, rel = [], [], 0.0
    for i in range(args.repeat):
        order = (args.ab, args.checkpoint_every) if i % 2 == 0 else (args.checkpoint_every, args.ab)
        res = {k: epoch(k) for k in order}
        (a, ga, la), (b, gb, lb) = res[args.ab], res[args.checkpoint_every]
        ta.append(a)
        tb.append(b)
        num = torch.sqrt(sum(((x - y) ** 2).sum() for x, y in zip(ga, gb)))
        den = torch.sqrt(sum((x**2).sum() for x in ga))
        rel = max(rel, float(num / den))
        assert la == lb or abs(la - lb) <= 1e-6 * abs(la), (la, lb)
    ma, mb = statistics.median(ta), statistics.median(tb)
    print(f"{args.material}/{args.variant}, window {args.window}, {args.repeat} interleaved pairs of epochs "
          f"(training step + validation), CPU s: A (checkpoint every {args.ab}) median {ma:.2f} "
          f"[{min(ta):.2f}-{max(ta):.2f}], B (checkpoint_every {args.checkpoint_every}) median {mb:.2f} "
          f"[{min(tb):.2f}-{max(tb):.2f}]; A/B = {ma / mb:.2f}; gradient |gA - gB|/|gA| <= {rel:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", default="jelly")
    ap.add_argument("--variant", default="invariant", choices=("invariant", "e3nn", "mlp", "analytic"))
    ap.add_argument("--window", type=int, default=5, help="teacher-forcing window [control steps]")
    ap.add_argument("--repeat", type=int, default=2, help="profiled epochs (after one warm-up epoch)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=0, help="rollout checkpoint interval K (0: none)")
    ap.add_argument("--ab", type=int, default=None, metavar="K",
                    help="instead: A/B of whole epochs, checkpointed every K steps (A) vs --checkpoint-every (B), "
                         "interleaved --repeat times; prints the CPU-time ratio and the gradients' difference")
    ap.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions (slows Python)")
    args = ap.parse_args()

    import torch
    from physim.operators.nclaw.experiment import ground_truth
    from physim.operators.nclaw.fit import build_model, model_material, window_loss
    from physim.operators.nclaw.scenes import SceneSpec, make_simulator

    torch.set_num_threads(args.threads)
    spec = SceneSpec()
    data = Path("/tmp") / f"nclaw_profile_{uuid.uuid4().hex[:8]}"
    traj = ground_truth(args.material, "train", spec, data)
    torch.manual_seed(0)
    model = build_model(args.variant, args.material, spec)
    sim = make_simulator("train", spec, {"main": model_material(model)})

    from physim._src import warp_op

    if args.ab is not None:
        _ab(sim, model, traj, spec, args)
        return
    timers = _Timers()

    def epoch() -> None:
        c = time.process_time()
        loss = window_loss(sim, model, traj, args.window, args.checkpoint_every)
        timers.add("training rollout, forward", time.process_time() - c)
        timers.in_backward = True
        c = time.process_time()
        loss.backward()
        timers.in_backward = False
        timers.add("training rollout, backward", time.process_time() - c)
        c = time.process_time()
        with torch.no_grad():
            window_loss(sim, model, traj, spec.steps, args.checkpoint_every)
        timers.add("validation rollout", time.process_time() - c)

    epoch()  # warm-up: kernel loading, first-call caches
    timers.t.clear()
    sim._neural_stress = timers.wrap("law: stress", sim._neural_stress)
    sim._neural_project = timers.wrap("law: plastic projection", sim._neural_project)
    fwd, bwd = warp_op._WarpFunction.forward, warp_op._WarpFunction.backward
    warp_op._WarpFunction.forward = staticmethod(timers.wrap("Warp transfers forward", fwd))
    warp_op._WarpFunction.backward = staticmethod(timers.wrap("Warp transfers backward", bwd))
    prof = cProfile.Profile(time.process_time) if args.cprofile else None
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if prof:
            prof.enable()
        for _ in range(args.repeat):
            epoch()
        if prof:
            prof.disable()
    finally:
        warp_op._WarpFunction.forward, warp_op._WarpFunction.backward = staticmethod(fwd), staticmethod(bwd)
    n = args.repeat
    wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    t = {k: v / n for k, v in timers.t.items()}
    phases = ("training rollout, forward", "training rollout, backward", "validation rollout")
    parts = {k: v for k, v in t.items() if k not in phases}
    engine = t["training rollout, backward"] - sum(v for k, v in parts.items() if k.endswith("[in backward]"))
    rows = [*sorted(parts.items()), ("torch autograd engine + rollout glue in backward (network backward)", engine)]
    rows.append(("rest (Python glue of step/rollout, loss, validation bookkeeping)", cpu - sum(v for _, v in rows)))
    print(f"{args.material}/{args.variant}, window {args.window}: one epoch (training step + full-rollout "
          f"validation) {cpu:.2f} s CPU, {wall:.2f} s wall; mean of {n}; torch threads {torch.get_num_threads()}")
    print("phases: " + ", ".join(f"{k} {t[k]:.2f} s" for k in phases))
    print("| part | CPU s / epoch | share |")
    print("|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.2f} | {100 * v / cpu:.0f} % |")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)

if __name__ == "__main__":
    main()
