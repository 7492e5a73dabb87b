"""Test helpers shared by every physim test suite.

`assert_grad_matches_fd` is the gradient check every differentiable path in physim
must pass: autograd directional derivatives against central finite differences
along random directions, in float64, one input at a time (so a wrong gradient in
one input cannot hide behind a right one in another) and for all inputs together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["GradCheckReport", "assert_grad_matches_fd"]


@dataclass(frozen=True)
class GradCheckReport:
    """One compared directional derivative.

    Attributes:
        which: Index of the perturbed input, or ``"all"``.
        direction: Index of the random direction.
        autograd: ⟨∇L, d⟩ from autograd.
        finite_difference: (L(x+εd) − L(x−εd)) / 2ε.
    """

    which: int | str
    direction: int
    autograd: float
    finite_difference: float

    @property
    def error(self) -> float:
        return abs(self.autograd - self.finite_difference)


def _scalarize(out, weights):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum((w * o).sum() for w, o in zip(weights, outs))


def assert_grad_matches_fd(
    fn: Callable[..., torch.Tensor | Sequence[torch.Tensor]],
    inputs: Sequence[torch.Tensor],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    n_directions: int = 3,
    seed: int = 0,
    wrt: Sequence[int] | None = None,
) -> list[GradCheckReport]:
    """Check autograd gradients of `fn` against central finite differences.

    The (possibly tensor- or tuple-valued) output is reduced to a scalar
    ``L = Σ w ⊙ fn(*inputs)`` with fixed random weights ``w``. For each input in
    `wrt` and for all of them together, `n_directions` random unit directions ``d``
    are drawn, and ``⟨∇L, d⟩`` is compared with ``(L(x+εd) − L(x−εd)) / 2ε``.

    Args:
        fn: Function of the input tensors.
        inputs: Input tensors; use float64 wherever the backend allows.
        eps: Finite-difference step along a unit direction.
        rtol, atol: Pass when ``|ad − fd| <= atol + rtol * max(|ad|, |fd|) + floor``, where
            ``floor = 8 · machine-ε · |L| / eps`` is the round-off error of the finite
            difference itself (it only matters when ⟨∇L, d⟩ is tiny next to L).
        n_directions: Random directions per input.
        seed: Seed of the directions and output weights.
        wrt: Indices of inputs to check (default: all floating-point inputs).

    Returns:
        The list of compared directional derivatives.

    Raises:
        AssertionError: naming the input, direction, both values and their error, on
            the first mismatch or sign disagreement.
    """
    gen = torch.Generator().manual_seed(seed)
    inputs = [x.detach() for x in inputs]
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if x.is_floating_point()]
    wrt = list(wrt)
    if not wrt:
        raise ValueError("wrt: no floating-point input to check")

    with torch.no_grad():
        out0 = fn(*inputs)
    outs0 = out0 if isinstance(out0, (tuple, list)) else (out0,)
    weights = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs0]

    leaves = [x.clone().requires_grad_(i in wrt) for i, x in enumerate(inputs)]
    loss = _scalarize(fn(*leaves), weights)
    grads = torch.autograd.grad(loss, [leaves[i] for i in wrt], allow_unused=True)
    grads = {i: (g if g is not None else torch.zeros_like(inputs[i])) for i, g in zip(wrt, grads)}

    def loss_at(shift: dict[int, torch.Tensor]) -> float:
        with torch.no_grad():
            xs = [x + shift[i] if i in shift else x for i, x in enumerate(inputs)]
            return float(_scalarize(fn(*xs), weights))

    machine_eps = max(float(torch.finfo(inputs[i].dtype).eps) for i in wrt)
    groups: list[tuple[int | str, list[int]]] = [(i, [i]) for i in wrt]
    if len(wrt) > 1:
        groups.append(("all", wrt))
    reports: list[GradCheckReport] = []
    for which, idx in groups:
        for k in range(n_directions):
            d = {i: torch.randn(inputs[i].shape, generator=gen, dtype=torch.float64).to(inputs[i]) for i in idx}
            norm = math.sqrt(sum(float((v * v).sum()) for v in d.values()))
            d = {i: v / norm for i, v in d.items()}
            l_plus = loss_at({i: eps * v for i, v in d.items()})
            l_minus = loss_at({i: -eps * v for i, v in d.items()})
            fd = (l_plus - l_minus) / (2 * eps)
            ad = sum(float((grads[i] * d[i]).sum()) for i in idx)
            rep = GradCheckReport(which, k, ad, fd)
            reports.append(rep)
            scale = max(abs(ad), abs(fd))
            # Round-off floor of the finite difference itself: the loss is known to ~machine epsilon
            # of its magnitude, and dividing by 2ε amplifies that error.
            noise = 8 * machine_eps * max(abs(l_plus), abs(l_minus)) / eps
            tol = atol + rtol * scale + noise
            if rep.error > tol or (scale > tol and math.copysign(1, ad) != math.copysign(1, fd)):
                raise AssertionError(
                    f"gradient mismatch for input {which}, direction {k}: autograd {ad:.10e}, "
                    f"finite difference {fd:.10e}, |error| {rep.error:.3e} > atol {atol:g} + rtol {rtol:g} * "
                    f"{scale:.3e} + round-off floor {noise:.1e}"
                )
    return reports
