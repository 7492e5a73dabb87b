"""Budgeted, logged access to a `Problem`: every optimiser calls the simulator through this.

The `Evaluator` charges each call to the budget (a forward call over the full horizon
costs 1; a gradient call costs the measured ``grad_cost``; a call over the first H of T
steps costs H/T of that, since a rollout's cost is linear in its length), records it in
the history, keeps the best *true* loss (full horizon, no annealing) and the actions that
reached it, and turns a diverged simulation into an infinite loss instead of a crash.

With a `CallLog` the calls are also written to disk: a run that was interrupted replays
its logged calls (checking that the optimiser asks for exactly the same actions) and
continues live from where it stopped, so a long optimisation resumes from its last
checkpoint without any method having to serialise its own state.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from physim.errors import ConfigError, PhysimError, SimulationDiverged
from physim.io.atomic import atomic_path

__all__ = ["BudgetExhausted", "CallLog", "CallRecord", "Evaluator"]

log = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """Raised inside an optimiser when the next call does not fit in the budget (caught by `optimize`)."""


@dataclass(frozen=True)
class CallRecord:
    """One simulator call.

    Attributes:
        index: Call number, from 0.
        kind: ``"forward"`` or ``"gradient"``.
        cost: What the call was charged, in forward calls over the full horizon.
        cumulative_cost: Budget used after this call.
        loss: The value returned (a surrogate when `true_loss` is false).
        true_loss: Full horizon and ``anneal = 0``: comparable across methods.
        best_loss: Best true loss found so far (inf before the first).
        horizon: Loss horizon of the call (None: full).
        anneal: Annealing weight of the call.
        seconds: Wall time of the call [s].
        phase: The optimiser's phase label (e.g. ``"sample"``, ``"gradient"``).
    """

    index: int
    kind: str
    cost: float
    cumulative_cost: float
    loss: float
    true_loss: bool
    best_loss: float
    horizon: int | None
    anneal: float
    seconds: float
    phase: str

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isinf(v) and k == "best_loss" else v)
                for k, v in self.__dict__.items()}


def _digest(actions: torch.Tensor) -> str:
    return hashlib.sha1(actions.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class CallLog:
    """The calls of one run, saved to `path` so the run can resume after an interruption.

    Args:
        path: File of the log (``torch.save`` format, written atomically).
        signature: What must match for a resume (task, method, seed, budget, config...).
        save_every: Write the file after this many new calls (and at the end).
    """

    VERSION = 1

    def __init__(self, path: str | Path, signature: dict, *, save_every: int = 10):
        self.path = Path(path)
        self.signature = signature
        self.save_every = save_every
        self.calls: list[dict] = []
        self.header: dict = {}
        self._unsaved = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PhysimError(f"{self.path}: not a readable physim call log ({type(exc).__name__}: {exc})"
                              .splitlines()[0]) from None
        if not isinstance(data, dict) or data.get("version") != self.VERSION or not isinstance(data.get("calls"), list):
            raise PhysimError(f"{self.path}: not a physim call log of version {self.VERSION}")
        if data.get("signature") != self.signature:
            theirs = data.get("signature") or {}
            diff = sorted(k for k in set(theirs) | set(self.signature) if theirs.get(k) != self.signature.get(k))
            raise PhysimError(f"{self.path}: belongs to a different run (differs in {', '.join(diff)}); "
                              "use another --out folder or delete the log to start afresh")
        self.calls = data["calls"]
        self.header = data.get("header", {})
        log.info("resuming from %s: %d logged calls", self.path, len(self.calls))

    def append(self, entry: dict) -> None:
        self.calls.append(entry)
        self._unsaved += 1
        if self._unsaved >= self.save_every:
            self.save()

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"version": self.VERSION, "signature": self.signature, "header": self.header,
                        "calls": self.calls}, tmp)
        self._unsaved = 0


class Evaluator:
    """Budgeted access to a problem; see the module docstring.

    Args:
        problem: The `Problem`.
        budget: Budget in forward calls over the full horizon.
        grad_cost: Cost of one gradient call in forward calls (None for a problem that is
            never differentiated; gradient calls then raise).
        call_log: Optional `CallLog` to replay from and append to.
        on_call: Optional callback ``on_call(evaluator, record)`` after every call (progress bars).
    """

    def __init__(self, problem, budget: float, grad_cost: float | None = None, *,
                 call_log: CallLog | None = None, on_call: Callable | None = None):
        self.problem = problem
        self.budget = float(budget)
        self.grad_cost = grad_cost
        self.call_log = call_log
        self.on_call = on_call
        self.history: list[CallRecord] = []
        self.cost_used = 0.0
        self.seconds = 0.0
        self.best_loss = math.inf
        self.best_actions: torch.Tensor | None = None
        self.phase = ""
        self.n_forward = 0
        self.n_gradient = 0
        self.diverged = 0

    # -- budget ------------------------------------------------------------------------------
    def cost(self, kind: str, horizon: int | None = None) -> float:
        """Charge of one call of `kind` over `horizon` steps."""
        frac = 1.0
        T = self.problem.horizon
        if horizon is not None and T:
            frac = horizon / T
        if kind == "gradient":
            if self.grad_cost is None:
                raise ConfigError("method", "a gradient method", "a sampling method (problem is not differentiable)")
            return self.grad_cost * frac
        return frac

    @property
    def remaining(self) -> float:
        return self.budget - self.cost_used

    @property
    def fraction(self) -> float:
        """Fraction of the budget used, in [0, 1]."""
        return min(1.0, self.cost_used / self.budget)

    def can_afford(self, kind: str = "forward", horizon: int | None = None, n: int = 1) -> bool:
        return self.cost_used + n * self.cost(kind, horizon) <= self.budget * (1 + 1e-12)

    def affordable(self, kind: str = "forward", horizon: int | None = None) -> int:
        """How many calls of `kind` still fit in the budget."""
        return max(0, math.floor(self.remaining / self.cost(kind, horizon) + 1e-9))

    # -- calls ---------------------------------------------------------------------------------
    def loss(self, actions: torch.Tensor, *, horizon: int | None = None, anneal: float = 0.0) -> float:
        """One forward call (charged); returns the loss, inf if the simulation diverged."""
        value, _ = self._call("forward", actions, horizon, anneal)
        return value

    def loss_and_grad(self, actions: torch.Tensor, *, horizon: int | None = None,
                      anneal: float = 0.0) -> tuple[float, torch.Tensor]:
        """One gradient call (charged); a diverged simulation gives (inf, zeros)."""
        value, grad = self._call("gradient", actions, horizon, anneal)
        return value, grad

    def batch_loss(self, actions: torch.Tensor) -> list[float]:
        """Forward calls for a stack (n, *action_shape); n calls are charged."""
        n = int(actions.shape[0])
        if not self.can_afford("forward", None, n):
            raise BudgetExhausted
        values: list[float | None] = [None] * n
        live = []
        for i in range(n):
            entry = self._replay("forward", actions[i], None, 0.0)
            if entry is None:
                live.append(i)
            else:
                values[i] = entry
        if live:
            t0 = time.perf_counter()
            try:
                got = self.problem.batch_loss(actions[live])
            except SimulationDiverged:
                got = [self._diverged_loss(actions[i]) for i in live]
            seconds = (time.perf_counter() - t0) / len(live)
            for i, v in zip(live, got):
                v = float(v) if math.isfinite(float(v)) else math.inf
                values[i] = self._record("forward", actions[i], None, 0.0, v, None, seconds, live=True)
        return [float(v) for v in values]

    def _diverged_loss(self, actions: torch.Tensor) -> float:
        try:
            return self.problem.loss(actions)
        except SimulationDiverged as exc:
            self._note_divergence(exc)
            return math.inf

    def _note_divergence(self, exc: Exception) -> None:
        self.diverged += 1
        if self.diverged == 1:
            log.warning("a simulation diverged (%s); its loss counts as inf", exc)

    def _replay(self, kind, actions, horizon, anneal):
        """The logged result of the next call if the log has it; None to call live."""
        if self.call_log is None or len(self.history) >= len(self.call_log.calls):
            return None
        entry = self.call_log.calls[len(self.history)]
        if entry["kind"] != kind or entry["horizon"] != horizon or entry["digest"] != _digest(actions):
            raise PhysimError(
                f"{self.call_log.path}: call {len(self.history)} of the log differs from this run "
                "(non-deterministic problem or changed code); delete the log to start afresh")
        value = entry["loss"]
        grad = entry.get("grad")
        self._record(kind, actions, horizon, anneal, value, grad, entry["seconds"], live=False)
        return value if kind == "forward" else (value, grad)

    def _call(self, kind: str, actions: torch.Tensor, horizon: int | None, anneal: float):
        if not self.can_afford(kind, horizon):
            raise BudgetExhausted
        replayed = self._replay(kind, actions, horizon, anneal)
        if replayed is not None:
            return replayed if kind == "gradient" else (replayed, None)
        t0 = time.perf_counter()
        grad = None
        try:
            if kind == "gradient":
                value, grad = self.problem.loss_and_grad(actions, horizon=horizon, anneal=anneal)
            else:
                value = self.problem.loss(actions, horizon=horizon, anneal=anneal)
        except SimulationDiverged as exc:
            self._note_divergence(exc)
            value = math.inf
        value = float(value)
        if not math.isfinite(value):
            value, grad = math.inf, (None if grad is None else torch.zeros_like(grad))
        if kind == "gradient" and grad is None:
            grad = torch.zeros(self.problem.action_shape, dtype=self.problem.dtype)
        if grad is not None and not bool(torch.isfinite(grad).all()):
            grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        seconds = time.perf_counter() - t0
        self._record(kind, actions, horizon, anneal, value, grad, seconds, live=True)
        return value, grad

    def _record(self, kind, actions, horizon, anneal, value, grad, seconds, *, live: bool):
        c = self.cost(kind, horizon)
        self.cost_used += c
        self.seconds += seconds
        if kind == "gradient":
            self.n_gradient += 1
        else:
            self.n_forward += 1
        true = horizon is None and not anneal
        if true and value < self.best_loss:
            self.best_loss = value
            self.best_actions = actions.detach().clone()
        rec = CallRecord(len(self.history), kind, c, self.cost_used, value, true, self.best_loss, horizon,
                         float(anneal), seconds, self.phase)
        self.history.append(rec)
        if live and self.call_log is not None:
            self.call_log.append({"kind": kind, "horizon": horizon, "digest": _digest(actions), "loss": value,
                                  "grad": None if grad is None else grad.detach().cpu().clone(),
                                  "seconds": seconds})
        if self.on_call is not None:
            self.on_call(self, rec)
        return value
