"""Learning to relax: choose SOR's ω across a sequence of systems from iteration counts alone.

Khodak, Chow, Balcan & Talwalkar, "Learning to Relax: Setting Solver Parameters Across a
Sequence of Linear System Instances", ICLR 2024. Ported from the MIT-licensed MATLAB reference
(mkhodak/learning-to-relax, ``learners/TsallisINF.m`` and ``learners/TsallisINFCB.m``):

- `TsallisINF`: the online bandit over a grid of ω with the 1/2-Tsallis-entropy regulariser and
  learning rate η_t = 2/√t; its only feedback is the number of iterations the chosen ω needed.
  Its total cost approaches that of the best fixed ω in hindsight.
- `TsallisINFCB`: the contextual variant — the context (e.g. the diagonal shift or the
  diffusivity of each system) is binned and an independent Tsallis-INF runs per bin, which
  approaches the instance-optimal ω when the best ω is a function of the context.

`run_sor_sequence` solves a sequence of systems with ω chosen by a learner (or fixed) and
records the iterations; `sor_iteration_table` solves every system with every grid ω (what the
best-fixed and instance-optimal comparators need).

    learner = TsallisINF(omega_grid(), seed=0)
    for A, b in systems:
        w = learner.predict()
        res = sor(A, b, omega=w)
        learner.update(int(res.iterations))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from physim.config import check_int, check_range
from physim.errors import ConfigError

__all__ = ["SequenceCost", "TsallisINF", "TsallisINFCB", "omega_grid", "run_sor_sequence", "sor_iteration_table"]


def omega_grid(low: float = 1.0, high: float = 1.95, n: int = 20) -> np.ndarray:
    """The ω grid of the paper's experiments: n equally spaced values in [low, high] (default 1 … 1.95)."""
    check_range("low", low, 0.0, 2.0, low_inclusive=False, high_inclusive=False)
    check_range("high", high, low, 2.0, high_inclusive=False)
    check_int("n", n, 1)
    return np.linspace(low, high, n)


class TsallisINF:
    """Tsallis-INF bandit (α = 1/2) over a finite grid of actions, with iteration counts as losses.

    Args:
        grid: The actions (ω values), shape (d,).
        seed: Seed of the sampling generator.

    Losses are iteration counts (≥ 1); as in the reference code the importance-weighted
    estimates accumulate (loss − 1)/p and are scaled by the running mean loss − 1.
    """

    def __init__(self, grid: Sequence[float] | np.ndarray, *, seed: int = 0):
        self.grid = np.asarray(grid, dtype=np.float64)
        if self.grid.ndim != 1 or self.grid.size < 1:
            raise ConfigError("grid", grid, "a non-empty 1-D array of actions")
        self.d = self.grid.size
        self.t = 1
        self.estimates = np.zeros(self.d)
        self.losses: list[float] = []
        self.scale = 1.0
        self.rng = np.random.default_rng(seed)
        self.index = 0
        self.prob = 1.0 / self.d
        self.actions: list[int] = []

    def probabilities(self) -> np.ndarray:
        """Current sampling distribution over the grid, shape (d,)."""
        eta = 2.0 / np.sqrt(self.t)
        L = self.estimates / self.scale
        # Newton's method for the normaliser x < min L with Σ 4 (η (L_i − x))⁻² = 1. The sum is convex and
        # increasing in x, so starting where the smallest term alone is 1 (the sum ≥ 1, right of the root)
        # the iterates decrease monotonically onto the root and never leave the valid region. (The
        # reference starts at x = −1, left of the root once the estimates grow, where Newton overshoots.)
        x = float(L.min()) - 2.0 / eta
        for _ in range(100):
            p = 4.0 * (eta * (L - x)) ** -2.0
            step = (p.sum() - 1.0) / (eta * (p**1.5).sum())
            x -= step
            if abs(step) < 1e-12:
                break
        p = 4.0 * (eta * (L - x)) ** -2.0
        if not np.isfinite(p).all() or p.sum() <= 0:
            return np.full(self.d, 1.0 / self.d)
        return p / p.sum()

    def predict(self) -> float:
        """Sample the next action."""
        p = self.probabilities()
        self.index = int(self.rng.choice(self.d, p=p))
        self.prob = float(p[self.index])
        self.actions.append(self.index)
        return float(self.grid[self.index])

    def update(self, loss: float) -> None:
        """Feed back the cost (iterations) of the last predicted action."""
        if not np.isfinite(loss) or loss < 0:
            raise ConfigError("loss", loss, "a finite, non-negative cost (iteration count)")
        self.losses.append(float(loss))
        self.scale = max(float(np.mean(self.losses)) - 1.0, 1.0)
        self.estimates[self.index] += (loss - 1.0) / self.prob
        self.t += 1


class TsallisINFCB:
    """Contextual bandit: the context interval is cut into bins, one `TsallisINF` per bin.

    Args:
        grid: The actions (ω values).
        n_bins: Number of context bins.
        context_range: (low, high) of the context (e.g. the range of diagonal shifts).
        seed: Seed of the per-bin learners.
    """

    def __init__(self, grid: Sequence[float] | np.ndarray, n_bins: int, context_range: tuple[float, float], *,
                 seed: int = 0):
        check_int("n_bins", n_bins, 1)
        lo, hi = (float(v) for v in context_range)
        if not hi > lo:
            raise ConfigError("context_range", context_range, "(low, high) with high > low")
        self.centers = lo + (hi - lo) * np.linspace(0.5 / n_bins, 1.0 - 0.5 / n_bins, n_bins)
        self.learners = [TsallisINF(grid, seed=seed + i) for i in range(n_bins)]
        self.grid = np.asarray(grid, dtype=np.float64)
        self.active = 0

    def predict(self, context: float) -> float:
        """Choose ω for a system with this context."""
        self.active = int(np.argmin(np.abs(self.centers - context)))
        return self.learners[self.active].predict()

    def update(self, loss: float) -> None:
        """Feed back the cost of the last prediction."""
        self.learners[self.active].update(loss)


@dataclass
class SequenceCost:
    """Iterations spent on a sequence of systems.

    Attributes:
        iterations: Iterations per system, shape (T,).
        omegas: ω used per system, shape (T,).
        converged: Whether each solve met its tolerance, shape (T,).
    """

    iterations: np.ndarray
    omegas: np.ndarray
    converged: np.ndarray

    @property
    def total(self) -> int:
        return int(self.iterations.sum())


def sor_iteration_table(systems: Sequence[tuple[object, np.ndarray]], omegas: np.ndarray, *, rtol: float = 1e-8,
                        maxiter: int = 10_000, progress: bool = False) -> np.ndarray:
    """Iterations of SOR for every system and every ω, shape (T, W): the comparators' raw data."""
    from physim.solvers.relaxation import sor

    rows = []
    items = systems
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(systems, desc="SOR for every ω", unit="system")
    for A, b in items:
        rows.append(sor(A, b, omega=np.asarray(omegas), rtol=rtol, maxiter=maxiter).iterations.numpy())
    return np.stack(rows)


def run_sor_sequence(
    systems: Sequence[tuple[object, np.ndarray]],
    policy: TsallisINF | TsallisINFCB | float | Callable[[int], float],
    *,
    contexts: Sequence[float] | None = None,
    rtol: float = 1e-8,
    maxiter: int = 10_000,
    table: np.ndarray | None = None,
    grid: np.ndarray | None = None,
) -> SequenceCost:
    """Solve a sequence with SOR, ω from a learner (fed back the iteration counts), a constant or a rule.

    Args:
        systems: (A_t, b_t) pairs in the order they arrive.
        policy: A `TsallisINF`, a `TsallisINFCB` (needs `contexts`), a fixed ω, or a function t ↦ ω.
        contexts: Per-system context for the contextual learner.
        rtol, maxiter: SOR stopping rule.
        table: Optional precomputed `sor_iteration_table` on `grid`: when the chosen ω is a grid value,
            its iteration count is read from the table instead of re-solving (same numbers, less time).
        grid: The ω grid of `table`.
    """
    from physim.solvers.relaxation import sor

    if isinstance(policy, TsallisINFCB) and contexts is None:
        raise ConfigError("contexts", None, "one context per system for a contextual learner")
    its, oms, conv = [], [], []
    for t, (A, b) in enumerate(systems):
        if isinstance(policy, TsallisINFCB):
            w = policy.predict(float(contexts[t]))
        elif isinstance(policy, TsallisINF):
            w = policy.predict()
        elif callable(policy):
            w = float(policy(t))
        else:
            w = float(policy)
        hit = None if table is None or grid is None else np.flatnonzero(np.isclose(grid, w))
        if hit is not None and hit.size:
            n_it, ok = int(table[t, hit[0]]), bool(table[t, hit[0]] < maxiter)
        else:
            res = sor(A, b, omega=w, rtol=rtol, maxiter=maxiter)
            n_it, ok = int(res.iterations), bool(res.converged)
        if isinstance(policy, (TsallisINF, TsallisINFCB)):
            policy.update(n_it)
        its.append(n_it)
        oms.append(w)
        conv.append(ok)
    return SequenceCost(np.array(its), np.array(oms), np.array(conv))
