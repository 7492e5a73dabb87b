"""Flattening of simulator states into lists of tensors and back.

A state may be a tensor, a tuple or list of states, or a dataclass whose fields are
tensors (non-tensor fields are carried along unchanged). Autograd functions take
flat tensor lists, so rollouts flatten states at their boundary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["flatten", "map_tensors"]


def flatten(state: Any) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]:
    """Split `state` into its tensor leaves and a function rebuilding a state from new leaves.

    Returns:
        (leaves, rebuild): ``rebuild(leaves)`` returns an object of the same structure as `state`.
    """
    if isinstance(state, torch.Tensor):
        return [state], lambda leaves: leaves[0]
    if isinstance(state, (tuple, list)):
        parts = [flatten(s) for s in state]
        counts = [len(p[0]) for p in parts]
        leaves = [leaf for p in parts for leaf in p[0]]
        kind = type(state)

        def rebuild_seq(new: list[torch.Tensor]):
            out, i = [], 0
            for (_, rb), n in zip(parts, counts):
                out.append(rb(new[i : i + n]))
                i += n
            return kind(out) if kind in (tuple, list) else kind(*out)

        return leaves, rebuild_seq
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        names = [f.name for f in dataclasses.fields(state) if isinstance(getattr(state, f.name), torch.Tensor)]
        leaves = [getattr(state, n) for n in names]

        def rebuild_dc(new: list[torch.Tensor]):
            return dataclasses.replace(state, **dict(zip(names, new)))

        return leaves, rebuild_dc
    raise TypeError(
        f"state of type {type(state).__name__} is not supported: expected a torch.Tensor, "
        "a tuple/list of them, or a dataclass with tensor fields"
    )


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], state: Any) -> Any:
    """Apply `fn` to every tensor leaf of `state` and return the rebuilt state."""
    leaves, rebuild = flatten(state)
    return rebuild([fn(t) for t in leaves])
