"""Check a fluid task's long-window state gradient against central finite differences (float64).

    .venv/bin/python scripts/check_env_state_fd.py Transporting 850                 # steps 850 → horizon
    .venv/bin/python scripts/check_env_state_fd.py Stabilizing 1000 --eps 1e-9 1e-13

Rolls the task's demo actions forward (no graph), then walks backward one control step at a
time (each step recomputed with its graph and differentiated with `torch.autograd.grad`),
which gives the adjoint ∂L/∂s_{t₀} of L = Σ_{t > t₀} step losses with respect to the
particle state at step t₀ (x, v, C, F), and the step at which any adjoint first turns
non-finite. It then compares ⟨∂L/∂s, d⟩ with (L(s + εd) − L(s − εd)) / 2ε along the
normalised adjoint and along a random direction. Over long windows only small ε stay in
the linear range (the flows amplify perturbations); see docs/benchmarks.md, "Fluid environments".
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

_FIELDS = ("x", "v", "C", "F", "collider_pose", "collider_force", "collider_torque")


def main(argv: list[str] | None = None) -> int:
    import gymnasium as gym
    import physim.envs  # noqa: F401
    import torch
    from physim.envs.fluid.registry import TASKS, env_id
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", choices=TASKS)
    ap.add_argument("t0", type=int, help="control step whose state is perturbed")
    ap.add_argument("--horizon", type=int, default=None, help="last step of the window (default: the task's)")
    ap.add_argument("--eps", type=float, nargs="*", default=[1e-7, 1e-9, 1e-11])
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = gym.make(env_id(args.task), quality="cpu", dtype=args.dtype)
    u = env.unwrapped
    env.reset(seed=0)
    task = u._task
    H = u.horizon if args.horizon is None else args.horizon
    if not 0 <= args.t0 < H <= u.horizon:
        ap.error(f"t0 = {args.t0} and horizon = {H}: expected 0 ≤ t0 < horizon ≤ {u.horizon}")
    acts = torch.as_tensor(u.demo_actions())[:H].to(task.dtype)

    def flat(s):
        return [getattr(s[0], f) for f in _FIELDS] + [s[1]]

    def unflat(ts, time):
        return dataclasses.replace(task.sim.reset(), **dict(zip(_FIELDS, ts[:-1])), time=time), ts[-1]

    def window_loss(s) -> float:
        total = 0.0
        with torch.no_grad():
            for t in range(args.t0, H):
                s = task.transition(s, acts[t])
                total += float(task.step_loss(t + 1, s))
        return total

    states = [task.initial_state()]
    with torch.no_grad():
        for t in tqdm(range(H), desc="forward", leave=False):
            states.append(task.transition(states[-1], acts[t]))
    adj, first_bad = None, None
    for t in tqdm(range(H - 1, args.t0 - 1, -1), desc="backward", leave=False):
        ins = [a.detach().clone().requires_grad_(True) for a in flat(states[t])]
        s1 = task.transition(unflat(ins, states[t][0].time), acts[t])
        L = task.step_loss(t + 1, s1)
        if adj is not None:
            L = L + sum((o * g).sum() for o, g in zip(flat(s1), adj) if o.requires_grad)
        gs = torch.autograd.grad(L, ins, allow_unused=True)
        adj = [torch.zeros_like(a) if g is None else g for g, a in zip(gs, ins)]
        if first_bad is None and not all(bool(torch.isfinite(g).all()) for g in adj):
            first_bad = t
    sizes = {f: f"{float(g.abs().max()):.3g}" for f, g in zip(_FIELDS[:4], adj[:4])}
    print(f"{args.task} {args.dtype}: adjoint of steps {args.t0 + 1}..{H} w.r.t. the state at step {args.t0}; "
          f"max |adjoint| {sizes}; first non-finite at step {first_bad}")
    base = flat(states[args.t0])
    norm = sum(float((g * g).sum()) for g in adj[:4]) ** 0.5
    gen = torch.Generator().manual_seed(0)
    rnd = [torch.randn(g.shape, generator=gen, dtype=g.dtype) for g in adj[:4]]
    rnorm = sum(float((g * g).sum()) for g in rnd) ** 0.5
    for name, d in (("adjoint", [g / norm for g in adj[:4]]), ("random", [g / rnorm for g in rnd])):
        ad = sum(float((g * e).sum()) for g, e in zip(adj[:4], d))
        for eps in args.eps:
            vals = [window_loss(unflat([b + sg * eps * e for b, e in zip(base[:4], d)] + base[4:],
                                       states[args.t0][0].time)) for sg in (1, -1)]
            print(f"  {name:8s} eps {eps:<8g} FD {(vals[0] - vals[1]) / (2 * eps):<14.7g} adjoint {ad:.7g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
