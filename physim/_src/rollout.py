"""Differentiable rollouts with bounded memory (checkpointing with recomputation).

Forward runs the whole horizon without building an autograd graph and keeps only
every K-th state. Backward walks the segments in reverse: it re-runs one segment
from its checkpoint with the graph on, backpropagates through it, and frees it.
Memory therefore grows with T/K stored states plus K steps of one segment's graph,
instead of T steps of graph; the price is one extra forward pass.

With ``keep_last = M``, the forward pass records the graph of the last M steps as it
goes (the memory that a budget leaves beside the checkpoints), and backward starts from
that graph: only the first T − M steps are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from physim._src.tree import flatten

__all__ = ["RolloutResult", "checkpointed_rollout"]

Step = Callable[..., Any]
Observe = Callable[[int, Any], torch.Tensor]


@dataclass(frozen=True)
class RolloutResult:
    """What a rollout returns.

    Attributes:
        state: The state after the last step (same structure as the initial state).
        observations: ``observe(t, state_{t+1})`` stacked over time, shape ``(T, ...)``;
            None when no `observe` was given.
        checkpoints: How many states the forward pass stored (T when not checkpointing).
    """

    state: Any
    observations: torch.Tensor | None
    checkpoints: int


def _run_segment(step, observe, state, actions, params, t0: int, t1: int):
    observations = []
    for t in range(t0, t1):
        state = step(state, None if actions is None else actions[t - t0], *params)
        if observe is not None:
            observations.append(observe(t, state))
    return state, observations


class _Checkpointed(torch.autograd.Function):
    # Backward recomputes segments and calls autograd.grad without a graph: first order only.
    physim_first_order_only = "checkpointed rollout"

    @staticmethod
    def forward(ctx, spec: dict, *flat: torch.Tensor):
        n_state, has_actions = spec["n_state"], spec["has_actions"]
        state_leaves = list(flat[:n_state])
        actions = flat[n_state] if has_actions else None
        params = flat[n_state + int(has_actions) :]
        step, observe, k, horizon, rebuild = spec["step"], spec["observe"], spec["k"], spec["T"], spec["rebuild"]

        checkpoints: list[list[torch.Tensor]] = []
        observations: list[torch.Tensor] = []
        state = rebuild(state_leaves)
        split = horizon - spec["keep"]  # steps [split, T) keep their graph from this pass
        for t0 in range(0, split, k):
            t1 = min(t0 + k, split)
            checkpoints.append([leaf.detach() for leaf in flatten(state)[0]])
            seg_actions = None if actions is None else actions[t0:t1]
            state, obs = _run_segment(step, observe, state, seg_actions, params, t0, t1)
            observations += obs
        ctx.kept = None
        if split < horizon:
            # the tail's graph is recorded now instead of being recomputed in backward (inside
            # `forward` grad mode is off; leaves detached here root the tail's own graph)
            n_p = len(params)
            needs = ctx.needs_input_grad[1:]
            with torch.enable_grad():
                leaves = [c.detach().requires_grad_(c.is_floating_point() and (split > 0 or bool(need)))
                          for c, need in zip(flatten(state)[0], needs[:n_state])]
                seg_actions = None
                if actions is not None:
                    seg_actions = actions[split:].detach().requires_grad_(bool(needs[n_state]))
                seg_params = [p.detach().requires_grad_(bool(need)) for p, need in zip(params, needs[-n_p:] if n_p
                                                                                       else ())]
                state, obs = _run_segment(step, observe, rebuild(leaves), seg_actions, seg_params, split, horizon)
            ctx.kept = (leaves, seg_actions, seg_params, flatten(state)[0], obs)
            observations += [o.detach() for o in obs]
        final = flatten(state)[0]
        ctx.spec, ctx.checkpoints = spec, checkpoints
        ctx.save_for_backward(*([] if actions is None else [actions]), *params)
        spec["stored"] = len(checkpoints)
        outs = [leaf.detach() for leaf in final]
        if observe is not None:
            outs.append(torch.stack(observations).detach())
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        spec = ctx.spec
        n_state, has_actions, k, horizon = spec["n_state"], spec["has_actions"], spec["k"], spec["T"]
        step, observe, rebuild = spec["step"], spec["observe"], spec["rebuild"]
        saved = ctx.saved_tensors
        actions = saved[0] if has_actions else None
        params = saved[int(has_actions) :]
        params_need = ctx.needs_input_grad[1 + n_state + int(has_actions) :]
        actions_need = has_actions and ctx.needs_input_grad[1 + n_state]

        g_state = list(grads[:n_state])
        g_obs = grads[n_state] if observe is not None else None
        g_actions = torch.zeros_like(actions) if actions_need else None
        g_params = [torch.zeros_like(p) if need else None for p, need in zip(params, params_need)]

        if any(c is None for c in ctx.checkpoints) or ctx.kept == "used":
            raise RuntimeError("a checkpointed rollout can be backpropagated once; roll out again for a second pass")
        split = horizon - spec["keep"]
        starts = list(range(0, split, k))
        segments = [(t0, min(t0 + k, split), seg) for seg, t0 in enumerate(starts)]
        if ctx.kept is not None:
            segments.append((split, horizon, None))
        for t0, t1, seg in reversed(segments):
            with torch.enable_grad():
                if seg is None:  # the tail recorded by the forward pass
                    leaves, seg_actions, seg_params, final_leaves, obs = ctx.kept
                    ctx.kept = "used"
                    state = rebuild(final_leaves)
                else:
                    leaves = [c.detach().requires_grad_(c.is_floating_point()) for c in ctx.checkpoints[seg]]
                    seg_actions = None
                    if actions is not None:
                        seg_actions = actions[t0:t1].detach().requires_grad_(bool(actions_need))
                    seg_params = [p.detach().requires_grad_(bool(need)) for p, need in zip(params, params_need)]
                    state, obs = _run_segment(step, observe, rebuild(leaves), seg_actions, seg_params, t0, t1)
                outputs, out_grads = [], []
                for leaf, g in zip(flatten(state)[0], g_state):
                    if g is not None and leaf.requires_grad:
                        outputs.append(leaf)
                        out_grads.append(g)
                if g_obs is not None:
                    for t, o in zip(range(t0, t1), obs):
                        if o.requires_grad:
                            outputs.append(o)
                            out_grads.append(g_obs[t])
                wrt = [x for x in leaves if x.requires_grad]
                if seg_actions is not None and seg_actions.requires_grad:
                    wrt.append(seg_actions)
                wrt += [p for p in seg_params if p.requires_grad]
                if outputs and wrt:
                    got = torch.autograd.grad(outputs, wrt, out_grads, allow_unused=True)
                else:
                    got = [None] * len(wrt)
            got = list(got)
            new_g_state = []
            for x in leaves:
                new_g_state.append(got.pop(0) if x.requires_grad else None)
            if seg_actions is not None and seg_actions.requires_grad:
                ga = got.pop(0)
                if ga is not None:
                    g_actions[t0:t1] += ga
            for i, p in enumerate(seg_params):
                if p.requires_grad:
                    gp = got.pop(0)
                    if gp is not None:
                        g_params[i] += gp
            g_state = new_g_state
            if seg is not None:
                ctx.checkpoints[seg] = None  # free as we go: a second backward is not supported
            del state, obs, leaves, got
        return (None, *g_state, *([g_actions] if has_actions else []), *g_params)


def checkpointed_rollout(
    step: Step,
    state0: Any,
    actions: torch.Tensor | None,
    params: Sequence[torch.Tensor] = (),
    *,
    checkpoint_every: int | None = None,
    observe: Observe | None = None,
    steps: int | None = None,
    keep_last: int = 0,
) -> RolloutResult:
    """Roll `step` forward over a horizon, differentiably, with bounded memory.

    Args:
        step: ``step(state, action, *params) -> state``, differentiable with torch
            autograd and pure (it must not modify its inputs). Every tensor it should
            differentiate with respect to must come in through `state`, `action` or
            `params`: gradients of tensors captured in a closure are not returned.
        state0: Initial state: a tensor, a tuple/list of tensors or a dataclass of tensors.
        actions: Per-step actions, shape ``(T, ...)``; None for a passive system
            (then `steps` gives T and `step` receives ``None``).
        params: Physical parameters (e.g. stiffness), passed to every step.
        checkpoint_every: K. Store every K-th state and recompute segments in backward;
            None stores the whole graph (fastest, memory O(T)).
        observe: ``observe(t, state_{t+1}) -> tensor``; its values are stacked into
            ``RolloutResult.observations``. Use it to keep only what a loss needs.
        steps: Horizon T when `actions` is None.
        keep_last: M. With checkpointing, the forward pass records the graph of the last M
            steps (memory of M steps' graph) and backward recomputes only the first T − M:
            the recomputation shrinks by M/T. Ignored without gradients or checkpointing.

    Returns:
        A `RolloutResult`. Its tensors are differentiable with respect to `state0`'s
        tensors, `actions` and `params`; with K=1, K=7 or no checkpointing the
        gradients are identical up to floating-point summation order.
    """
    if actions is not None:
        horizon = int(actions.shape[0])
        if steps is not None and steps != horizon:
            raise ValueError(f"steps={steps} disagrees with actions.shape[0]={horizon}")
    elif steps is None:
        raise ValueError("steps: give the horizon when actions is None")
    else:
        horizon = int(steps)
    if horizon < 1:
        raise ValueError(f"horizon={horizon} is invalid: expected at least one step")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1
    ):
        raise ValueError(f"checkpoint_every={checkpoint_every!r} is invalid: expected None or an integer >= 1")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise ValueError(f"keep_last={keep_last!r} is invalid: expected an integer >= 0")
    params = tuple(params)
    leaves, rebuild = flatten(state0)
    differentiable = torch.is_grad_enabled() and any(
        t.requires_grad for t in [*leaves, *([actions] if actions is not None else []), *params])
    keep = min(keep_last, horizon) if differentiable else 0
    if keep == horizon:
        checkpoint_every = None  # the whole graph is kept: plain autograd

    if checkpoint_every is None:
        state, obs = _run_segment(step, observe, state0, actions, params, 0, horizon)
        return RolloutResult(state, torch.stack(obs) if observe is not None else None, horizon)

    spec = {
        "step": step,
        "observe": observe,
        "k": checkpoint_every,
        "T": horizon,
        "n_state": len(leaves),
        "has_actions": actions is not None,
        "rebuild": rebuild,
        "keep": keep,
    }
    flat = [*leaves, *([actions] if actions is not None else []), *params]
    outs = _Checkpointed.apply(spec, *flat)
    final_rebuild = flatten(state0)[1]
    state = final_rebuild(list(outs[: len(leaves)]))
    observations = outs[len(leaves)] if observe is not None else None
    return RolloutResult(state, observations, spec["stored"])
