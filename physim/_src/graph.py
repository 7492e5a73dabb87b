"""Inspection of a tensor's autograd graph: which physim operations it flows through.

Warp and Taichi kernels reach torch through custom autograd Functions whose backward
runs kernel adjoints outside torch: they have first derivatives only. Each such
Function class carries a ``physim_first_order_only`` attribute naming its backend; a
loss whose graph contains one cannot be differentiated twice (Hessian-vector products
of AdaHessian or SophiaH would silently miss those paths), and
`first_order_only_ops` finds them so a training loop can refuse before it starts.
"""

from __future__ import annotations

import torch

__all__ = ["first_order_only_ops"]

#: The attribute marking an autograd Function without second derivatives; its value names the backend.
MARKER = "physim_first_order_only"


def first_order_only_ops(tensor: torch.Tensor, *, limit: int = 1_000_000) -> list[str]:
    """Names of the first-order-only physim operations in `tensor`'s autograd graph.

    Args:
        tensor: Usually the scalar loss.
        limit: Stop after visiting this many graph nodes (a guard for pathological graphs).

    Returns:
        Distinct descriptions such as ``"Warp kernel op 'chain_step'"``, in discovery order;
        empty when the graph is pure torch (or `tensor` has no graph).
    """
    root = getattr(tensor, "grad_fn", None)
    found: dict[str, None] = {}
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        backend = getattr(getattr(node, "_forward_cls", None), MARKER, None)
        if backend:
            op = getattr(node, "op", None)  # the bridge keeps its op on the ctx (= this node)
            name = getattr(op, "name", None)
            found[f"{backend} op {name!r}" if name else str(backend)] = None
        stack.extend(fn for fn, _ in getattr(node, "next_functions", ()))
    return list(found)
