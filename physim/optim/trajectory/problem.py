"""What a trajectory optimiser sees: a loss over an action tensor, and its gradient when there is one.

A `Problem` knows nothing of simulators: the fluid, shell and tactile suites, the chain
tasks and the toy problems all reach the optimisers through this one interface.

Two optional capabilities serve FluidLab's optimisation schemes:

- **horizon**: a problem whose actions have a time axis 0 of length T and whose loss is
  a sum of per-step terms may accept ``loss(actions, horizon=H)`` and return the loss of
  the first H steps only (FluidLab's expanding loss horizon). It then declares
  ``horizon = T``; a problem without a time axis declares ``horizon = None``.
- **anneal**: a problem may accept ``loss(actions, anneal=w)`` with w in [0, 1] and add a
  smoothing or shaping term whose weight is w (a soft contact, a sigmoid in place of a
  step, an attraction term). ``anneal = 0`` is always the true task loss; gradient
  methods lower w to 0 during the run (loss annealing). It declares ``supports_anneal``.

Example::

    problem = from_torch_loss(lambda a: ((a.cumsum(0) - goal) ** 2).mean(), action_shape=(50, 3),
                              lower=-1.0, upper=1.0)
    problem.loss(torch.zeros(50, 3))             # float
    problem.loss_and_grad(torch.zeros(50, 3))    # (float, tensor of shape (50, 3))
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from physim.errors import ConfigError

__all__ = [
    "BlackBoxProblem",
    "Problem",
    "ProblemBase",
    "TorchLossProblem",
    "from_black_box",
    "from_torch_loss",
    "measure_grad_cost",
]


@runtime_checkable
class Problem(Protocol):
    """The interface every optimiser of `physim.optim.trajectory` works with.

    Attributes:
        action_shape: Shape of one action tensor, e.g. (T, action_dim).
        differentiable: Whether `loss_and_grad` is available.
        lower: Lower bounds of the actions, shape `action_shape`, or None.
        upper: Upper bounds of the actions, shape `action_shape`, or None.
        horizon: Length T of the time axis 0 that `loss` can be truncated to, or None.
        supports_anneal: Whether `loss` honours ``anneal``.
        dtype: Floating-point dtype of the actions.
    """

    action_shape: tuple[int, ...]
    differentiable: bool
    lower: torch.Tensor | None
    upper: torch.Tensor | None
    horizon: int | None
    supports_anneal: bool
    dtype: torch.dtype

    def loss(self, actions: torch.Tensor, *, horizon: int | None = None, anneal: float = 0.0) -> float:
        """The loss at `actions` (the first `horizon` steps; `anneal` as described above)."""
        ...

    def loss_and_grad(
        self, actions: torch.Tensor, *, horizon: int | None = None, anneal: float = 0.0
    ) -> tuple[float, torch.Tensor]:
        """The loss and its gradient with respect to `actions` (same shape)."""
        ...


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _keywords(takes_anneal: bool, horizon: int | None, anneal: float) -> dict:
    """Keyword arguments for a loss: ``horizon`` when truncated, ``anneal`` when used and accepted."""
    kw = {}
    if horizon is not None:
        kw["horizon"] = horizon
    if anneal and takes_anneal:
        kw["anneal"] = float(anneal)
    return kw


def _bound(name: str, value, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=dtype)
    try:
        t = torch.broadcast_to(t, shape).clone()
    except RuntimeError:
        raise ConfigError(name, tuple(t.shape), f"a number or a tensor broadcastable to {shape}") from None
    if torch.isnan(t).any():
        raise ConfigError(name, "NaN", "numbers (use ±inf for an unbounded entry)")
    return t


class ProblemBase:
    """Shared validation of `Problem` implementations: shapes, bounds, horizon and dtype.

    Args:
        action_shape: Shape of one action tensor.
        lower, upper: Bounds (numbers or tensors broadcastable to `action_shape`), or None.
        horizon: T when the loss accepts ``horizon=``; None otherwise.
        supports_anneal: Whether the loss accepts ``anneal=``.
        differentiable: Whether `loss_and_grad` works.
        dtype: Floating-point dtype of the actions.
        name: Label used in messages and results.
    """

    def __init__(
        self,
        action_shape: Sequence[int],
        *,
        lower=None,
        upper=None,
        horizon: int | None = None,
        supports_anneal: bool = False,
        differentiable: bool = False,
        dtype: torch.dtype = torch.float64,
        name: str = "problem",
    ):
        shape = tuple(int(s) for s in action_shape) if isinstance(action_shape, (tuple, list, torch.Size)) else None
        if not shape or any(s < 1 for s in shape):
            raise ConfigError("action_shape", action_shape, "a non-empty tuple of positive sizes, e.g. (T, 3)")
        if not dtype.is_floating_point:
            raise ConfigError("dtype", dtype, "a floating-point torch dtype")
        self.action_shape = shape
        self.dtype = dtype
        self.name = name
        self.lower = _bound("lower", lower, shape, dtype)
        self.upper = _bound("upper", upper, shape, dtype)
        if self.lower is not None and self.upper is not None and bool((self.lower > self.upper).any()):
            raise ConfigError("lower", "lower > upper somewhere", "lower <= upper everywhere")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int)
                                    or horizon != shape[0]):
            raise ConfigError("horizon", horizon, f"None or the length of the time axis 0, {shape[0]}")
        self.horizon = horizon
        self.supports_anneal = bool(supports_anneal)
        self.differentiable = bool(differentiable)

    # -- helpers shared by the adapters -------------------------------------------------------
    def _detect(self, fn: Callable, action_shape, kwargs: dict) -> None:
        """Read the loss's optional keywords: ``horizon`` (default T = action_shape[0]) and ``anneal``."""
        self._takes_horizon = _accepts(fn, "horizon")
        self._takes_anneal = _accepts(fn, "anneal")
        if self._takes_horizon and "horizon" not in kwargs:
            shape = tuple(action_shape) if isinstance(action_shape, (tuple, list, torch.Size)) else ()
            kwargs["horizon"] = int(shape[0]) if shape else None
        kwargs.setdefault("supports_anneal", self._takes_anneal)

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Return `actions` as a detached tensor of this problem's dtype; raise on a wrong shape or NaN."""
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(actions)
        if tuple(actions.shape) != self.action_shape:
            raise ConfigError("actions", f"shape {tuple(actions.shape)}", f"shape {self.action_shape}")
        if not bool(torch.isfinite(actions).all()):
            raise ConfigError("actions", "non-finite values", "finite numbers")
        return actions.detach().to(self.dtype)

    def check_horizon(self, horizon: int | None) -> int | None:
        if horizon is None:
            return None
        if self.horizon is None:
            raise ConfigError("horizon", horizon, f"None: problem {self.name!r} has no truncatable time axis")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= self.horizon:
            raise ConfigError("horizon", horizon, f"an integer in [1, {self.horizon}]")
        return None if horizon == self.horizon else horizon

    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Clamp `actions` into the bounds (the optimiser's search space; exports never clip)."""
        if self.lower is not None:
            actions = torch.maximum(actions, self.lower.to(actions))
        if self.upper is not None:
            actions = torch.minimum(actions, self.upper.to(actions))
        return actions

    def batch_loss(self, actions: torch.Tensor) -> list[float]:
        """Losses of a stack of action tensors, shape (n, *action_shape); one simulator call each."""
        return [self.loss(a) for a in actions]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, action_shape={self.action_shape}, "
                f"differentiable={self.differentiable}, horizon={self.horizon})")


class TorchLossProblem(ProblemBase):
    """A problem from a torch-differentiable loss ``loss_fn(actions) -> scalar tensor``.

    ``loss_fn`` may take the keyword arguments ``horizon`` and ``anneal``; when it does,
    the problem supports them. Forward calls run under ``torch.no_grad``, so they cost
    what a plain simulation costs.

    Args:
        loss_fn: The loss; e.g. a gym env's ``env.unwrapped.rollout_loss``.
        action_shape: Shape of one action tensor.
        batch_loss_fn: Optional ``(n, *action_shape) -> (n,)`` evaluating a population at
            once (a batched simulator); still counted as n simulator calls.
        **kwargs: As `ProblemBase` (bounds, dtype, name; ``horizon`` defaults to
            ``action_shape[0]`` when `loss_fn` accepts ``horizon``).
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], action_shape: Sequence[int], *,
                 batch_loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs):
        if not callable(loss_fn):
            raise ConfigError("loss_fn", type(loss_fn).__name__, "a callable actions -> scalar tensor")
        self._fn = loss_fn
        self._batch_fn = batch_loss_fn
        self._detect(loss_fn, action_shape, kwargs)
        super().__init__(action_shape, differentiable=True, **kwargs)
        if self.horizon is not None and not self._takes_horizon:
            raise ConfigError("horizon", self.horizon, "None: loss_fn takes no `horizon` keyword")

    def _call(self, actions: torch.Tensor, horizon: int | None, anneal: float) -> torch.Tensor:
        out = self._fn(actions, **_keywords(self._takes_anneal, horizon, anneal))
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise ValueError(f"problem {self.name!r}: loss_fn must return a scalar tensor, got "
                             f"{type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))}")
        return out.reshape(())

    def loss(self, actions: torch.Tensor, *, horizon: int | None = None, anneal: float = 0.0) -> float:
        a = self.check_actions(actions)
        horizon = self.check_horizon(horizon)
        with torch.no_grad():
            return float(self._call(a, horizon, anneal))

    def loss_and_grad(self, actions: torch.Tensor, *, horizon: int | None = None,
                      anneal: float = 0.0) -> tuple[float, torch.Tensor]:
        a = self.check_actions(actions).clone().requires_grad_(True)
        horizon = self.check_horizon(horizon)
        with torch.enable_grad():
            out = self._call(a, horizon, anneal)
            grad = torch.autograd.grad(out, a, allow_unused=True)[0] if out.requires_grad else None
        grad = torch.zeros_like(a) if grad is None else grad.detach()
        return float(out.detach()), grad

    def batch_loss(self, actions: torch.Tensor) -> list[float]:
        if self._batch_fn is None:
            return super().batch_loss(actions)
        with torch.no_grad():
            out = self._batch_fn(actions.detach().to(self.dtype))
        out = torch.as_tensor(out).reshape(-1)
        if out.numel() != actions.shape[0]:
            raise ValueError(f"problem {self.name!r}: batch_loss_fn returned {out.numel()} values for "
                             f"{actions.shape[0]} action tensors")
        return [float(v) for v in out]


class BlackBoxProblem(ProblemBase):
    """A problem from a black-box callable ``fn(actions) -> number`` (no autograd through it).

    ``fn`` receives a detached float tensor of shape `action_shape` (on the CPU unless the
    problem's bounds live elsewhere) and returns anything ``float()`` accepts. With
    ``grad_fn(actions) -> tensor`` the problem is differentiable; a gradient call is then
    ``fn`` followed by ``grad_fn``.

    Args:
        fn: The loss.
        action_shape: Shape of one action tensor.
        grad_fn: Optional gradient of `fn`, same shape as the actions.
        batch_fn: Optional ``(n, *action_shape) -> n values``.
        **kwargs: As `ProblemBase`.
    """

    def __init__(self, fn: Callable[..., float], action_shape: Sequence[int], *,
                 grad_fn: Callable[..., torch.Tensor] | None = None,
                 batch_fn: Callable[[torch.Tensor], Sequence[float]] | None = None, **kwargs):
        if not callable(fn):
            raise ConfigError("fn", type(fn).__name__, "a callable actions -> number")
        if grad_fn is not None and not callable(grad_fn):
            raise ConfigError("grad_fn", type(grad_fn).__name__, "None or a callable actions -> gradient")
        self._fn, self._grad_fn, self._batch_fn = fn, grad_fn, batch_fn
        self._detect(fn, action_shape, kwargs)
        super().__init__(action_shape, differentiable=grad_fn is not None, **kwargs)

    def _kw(self, horizon, anneal) -> dict:
        return _keywords(self._takes_anneal, horizon, anneal)

    def loss(self, actions: torch.Tensor, *, horizon: int | None = None, anneal: float = 0.0) -> float:
        a = self.check_actions(actions)
        kw = self._kw(self.check_horizon(horizon), anneal)
        with torch.no_grad():
            value = self._fn(a, **kw)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"problem {self.name!r}: fn must return a number, got {type(value).__name__}") from None

    def loss_and_grad(self, actions: torch.Tensor, *, horizon: int | None = None,
                      anneal: float = 0.0) -> tuple[float, torch.Tensor]:
        if self._grad_fn is None:
            raise ConfigError("method", "a gradient method", f"a sampling method: problem {self.name!r} has no grad_fn")
        a = self.check_actions(actions)
        horizon = self.check_horizon(horizon)
        value = self.loss(a, horizon=horizon, anneal=anneal)
        grad = torch.as_tensor(self._grad_fn(a, **self._kw(horizon, anneal)), dtype=self.dtype)
        if tuple(grad.shape) != self.action_shape:
            raise ValueError(f"problem {self.name!r}: grad_fn returned shape {tuple(grad.shape)}, "
                             f"expected {self.action_shape}")
        return value, grad

    def batch_loss(self, actions: torch.Tensor) -> list[float]:
        if self._batch_fn is None:
            return super().batch_loss(actions)
        values = [float(v) for v in self._batch_fn(actions.detach().to(self.dtype))]
        if len(values) != actions.shape[0]:
            raise ValueError(f"problem {self.name!r}: batch_fn returned {len(values)} values for "
                             f"{actions.shape[0]} action tensors")
        return values


def from_torch_loss(loss_fn: Callable[..., torch.Tensor], action_shape: Sequence[int], **kwargs) -> TorchLossProblem:
    """A differentiable `Problem` from a torch loss; see `TorchLossProblem`."""
    return TorchLossProblem(loss_fn, action_shape, **kwargs)


def from_black_box(fn: Callable[..., float], action_shape: Sequence[int], **kwargs) -> BlackBoxProblem:
    """A `Problem` from a black-box callable (differentiable only with ``grad_fn``); see `BlackBoxProblem`."""
    return BlackBoxProblem(fn, action_shape, **kwargs)


def measure_grad_cost(problem: Problem, actions: torch.Tensor, *, repeats: int = 3) -> float:
    """Measured cost of one gradient call, in forward calls, at `actions` over the full horizon.

    One untimed forward and gradient call warm up (kernel compilation, caches); then
    `repeats` forward and gradient calls alternate, so both see the same machine load,
    and the ratio of the medians is returned. These calls measure the simulator, not the
    optimisation: their results are discarded and they are not charged to a budget.

    Raises:
        ConfigError: If the problem is not differentiable, or `repeats` < 1.
    """
    if not problem.differentiable:
        raise ConfigError("problem", getattr(problem, "name", problem), "a differentiable problem")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError("repeats", repeats, "an integer >= 1")
    problem.loss(actions)
    problem.loss_and_grad(actions)
    fwd, grad = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem.loss(actions)
        t1 = time.perf_counter()
        problem.loss_and_grad(actions)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        grad.append(t2 - t1)
    ratio = statistics.median(grad) / max(statistics.median(fwd), 1e-12)
    # A gradient call always includes a forward pass: it never costs less than one.
    return max(1.0, ratio) if math.isfinite(ratio) else 1.0
