"""SKR — Sorting Krylov Recycling for sequences of related linear systems.

Wang, Hao et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024 (reference code wanghong1700/NO-DataGen-SKR, MIT; this is a fresh
implementation of the published recipe):

1. **Features.** Each system is described by its parameter field (e.g. the Darcy
   permeability): 2-D FFT, shifted so the lowest frequencies sit in the centre, keep the central
   ``n_freq × n_freq`` block, real and imaginary parts → PCA to ``n_components`` → min–max
   normalised to [0, 1].
2. **Sorting.** ``"greedy"``: nearest-neighbour chain (start at the system with the smallest
   first principal coordinate, always go to the closest unvisited one); ``"gray"``: the paper's
   binary-region order (each coordinate above/below ½ gives one bit; cells visited in
   reflected-Gray-code order so neighbouring cells differ in one bit; greedy inside a cell).
3. **Recycling solve.** Solve in that order with GCRO-DR (`physim.solvers.recycling.gcrodr`),
   carrying the recycled subspace from each system to the next; or scipy's ``gcrotmk`` with a
   carried ``CU`` list. The baseline solves each system from scratch with scipy's GMRES.

    order = sort_systems(skr_features(fields))
    seq = solve_sequence(matrices, rhs, order=order, method="gcrodr", M="jacobi")
    seq.x            # solutions in the ORIGINAL order, (N, n)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError

__all__ = ["SEQUENCE_METHODS", "SequenceResult", "skr_features", "solve_sequence", "sort_systems"]

log = logging.getLogger(__name__)

SEQUENCE_METHODS = ("gcrodr", "gcrotmk", "gmres", "gmres_arnoldi")


def skr_features(fields: np.ndarray, *, n_freq: int = 12, n_components: int = 7) -> np.ndarray:
    """Low-frequency FFT + PCA features of parameter fields, normalised to [0, 1].

    Args:
        fields: Parameter fields, shape (N, s, s) (or (N, s) for 1-D parameters).
        n_freq: Side of the central low-frequency block kept (the paper: 12).
        n_components: PCA dimension (the paper: 7); reduced to N − 1 if there are fewer systems.

    Returns:
        Features, shape (N, n_components).
    """
    F = np.asarray(fields, dtype=np.float64)
    if F.ndim not in (2, 3) or F.shape[0] < 2:
        raise ConfigError("fields", f"array of shape {F.shape}", "(N, s, s) or (N, s) with N ≥ 2 systems")
    check_int("n_freq", n_freq, 1)
    check_int("n_components", n_components, 1)
    if F.ndim == 3:
        spec = np.fft.fftshift(np.fft.fft2(F), axes=(-2, -1))
        c0, c1 = F.shape[1] // 2, F.shape[2] // 2
        h = n_freq // 2
        block = spec[:, max(c0 - h, 0): c0 - h + n_freq, max(c1 - h, 0): c1 - h + n_freq]
    else:
        block = np.fft.fft(F)[:, :n_freq]
    flat = block.reshape(F.shape[0], -1)
    X = np.concatenate([flat.real, flat.imag], axis=1)
    X = X - X.mean(axis=0)
    q = min(n_components, X.shape[0] - 1, X.shape[1])
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    Z = X @ vt[:q].T
    lo, hi = Z.min(axis=0), Z.max(axis=0)
    return (Z - lo) / np.where(hi > lo, hi - lo, 1.0)


def _greedy_chain(X: np.ndarray, idx: np.ndarray, start: int) -> list[int]:
    """Nearest-neighbour chain through the rows `idx` of X, starting at `start` (an element of idx)."""
    left = {int(i) for i in idx}
    left.discard(start)
    order = [start]
    rest = np.array(sorted(left), dtype=np.int64)
    alive = np.ones(len(rest), dtype=bool)
    cur = start
    for _ in range(len(rest)):
        d = ((X[rest] - X[cur]) ** 2).sum(axis=1)
        d[~alive] = np.inf
        j = int(np.argmin(d))
        alive[j] = False
        cur = int(rest[j])
        order.append(cur)
    return order


def _gray_rank(bits: np.ndarray) -> np.ndarray:
    """Position of each binary code (rows of 0/1) in the reflected Gray-code sequence."""
    # Gray code g ↦ its index i: i = g XOR (g >> 1) XOR (g >> 2) ...; bits[:, 0] is the most significant.
    n = bits.shape[1]
    out = np.zeros(bits.shape[0], dtype=np.int64)
    acc = np.zeros(bits.shape[0], dtype=np.int64)
    for j in range(n):
        acc = acc ^ bits[:, j].astype(np.int64)
        out = (out << 1) | acc
    return out


def sort_systems(features: np.ndarray, *, method: str = "greedy") -> np.ndarray:
    """An order of the systems in which neighbours are similar.

    Args:
        features: Shape (N, d), e.g. from `skr_features` (normalised to [0, 1]).
        method: ``"greedy"`` (nearest-neighbour chain), ``"gray"`` (binary-region cells in Gray-code
            order, greedy within a cell) or ``"none"`` (the given order).

    Returns:
        Permutation of range(N), int64.
    """
    check_choice("method", method, ("greedy", "gray", "none"))
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ConfigError("features", f"array of shape {X.shape}", "(N, d) with N ≥ 1")
    N = X.shape[0]
    if method == "none" or N == 1:
        return np.arange(N)
    if method == "greedy":
        return np.array(_greedy_chain(X, np.arange(N), int(np.argmin(X[:, 0]))), dtype=np.int64)
    rank = _gray_rank(X >= 0.5)
    order: list[int] = []
    for cell in np.unique(rank):
        members = np.flatnonzero(rank == cell)
        # Enter each cell at the member closest to where the previous cell ended.
        start = int(members[np.argmin(((X[members] - X[order[-1]]) ** 2).sum(1))]) if order else int(members[0])
        order.extend(_greedy_chain(X, members, start))
    return np.array(order, dtype=np.int64)


@dataclass
class SequenceResult:
    """Outcome of `solve_sequence`; per-system arrays are in the ORIGINAL order of the systems.

    Attributes:
        x: Solutions, shape (N, n).
        iterations: Products with A per system (recycling set-up included), shape (N,).
        converged: Whether each system met ‖b − A x‖ ≤ max(rtol‖b‖, atol), shape (N,).
        residuals: Final true residual norms, shape (N,).
        seconds: Wall time per system [s] (preconditioner set-up included), shape (N,).
        order: The order in which the systems were solved, shape (N,).
        method: Solver name.
        info: Totals (``"total_seconds"``; ``"total_cpu_seconds"``, the CPU time of the process (all its
            threads, so a multithreaded BLAS call is counted in full), which a busy machine distorts less than
            wall time; ``"total_iterations"``) and settings.
    """

    x: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    residuals: np.ndarray
    seconds: np.ndarray
    order: np.ndarray
    method: str
    info: dict = field(default_factory=dict)


def _scipy_prec(M: object, A):
    """A scipy-compatible preconditioner for one matrix: None, a name, a `Preconditioner` or a factory A ↦ M."""
    from physim.solvers.operators import as_operator
    from physim.solvers.preconditioners import Preconditioner, make_preconditioner
    from physim.solvers.scipy_adapter import as_scipy_operator

    if M is None:
        return None
    if isinstance(M, str):
        op = as_operator(A, n=A.shape[0], batch=1, dtype=torch.float64, device=torch.device("cpu"))
        M = make_preconditioner(M, op, n=A.shape[0], batch=1)
    elif not isinstance(M, Preconditioner) and callable(M):
        M = M(A)  # a factory building this system's preconditioner
    if M is None or hasattr(M, "matvec"):
        return M
    return as_scipy_operator(M, A.shape[0])


def solve_sequence(
    matrices: Sequence | Callable[[int], object],
    rhs: np.ndarray | Sequence | Callable[[int], np.ndarray],
    *,
    n_systems: int | None = None,
    order: np.ndarray | None = None,
    method: str = "gcrodr",
    M: object = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    m: int = 40,
    k: int = 20,
    maxiter: int | None = None,
    warm_start: bool = False,
    recycle: bool = True,
    space: object = None,
    CU: list | None = None,
    progress: bool = False,
    update_every: int = 1,
) -> SequenceResult:
    """Solve N related systems A_i x_i = b_i one after the other, recycling between them.

    Args:
        matrices: Sequence of N scipy sparse matrices, or a function i ↦ A_i (built lazily, in
            solve order: data generation does not hold all matrices at once).
        rhs: Array (N, n), sequence of N vectors, or a function i ↦ b_i.
        n_systems: N when `matrices` is a function.
        order: Solve order (e.g. from `sort_systems`); default the given order.
        method: ``"gcrodr"`` (physim's GCRO-DR, recycled subspace carried), ``"gcrotmk"`` (scipy's
            GCROT(m, k) with a carried ``CU`` list) or ``"gmres"`` (scipy's GMRES(m), each system from
            scratch: the baseline) or ``"gmres_arnoldi"`` (physim's GMRES(m) on GCRO-DR's own Arnoldi
            process, each system from scratch: the baseline with the same Gram–Schmidt and products).
        M: Preconditioner per system: None, a name (``"jacobi"``, ``"ilu"``, ``"ichol"``, ``"amg"``) built
            from each A_i, or a function A ↦ preconditioner. Set-up time counts in `seconds`.
        rtol, atol: Per-system stopping tolerance on the true residual.
        m: Krylov dimension per cycle (GMRES restart length).
        k: Recycled vectors (gcrodr, gcrotmk).
        maxiter: Limit on products with A per system (default 10 n).
        warm_start: Start each system from the previous solution in solve order (off by default:
            then only the recycled subspace carries information).
        recycle: Carry the recycled subspace between systems (gcrodr, gcrotmk); False starts each
            system afresh (GCRO-DR then still deflates within a system).
        space: A `RecycleSpace` to start from and update (gcrodr), e.g. to continue across calls.
        CU: The ``CU`` list of scipy's gcrotmk to start from and update.
        progress: Show a progress bar.
        update_every: gcrodr only: refresh the recycled space every this many deflated cycles (and on
            the last); 1 is Parks et al.'s GCRO-DR, larger values trade a few more products for cheaper
            cycles (see `physim.solvers.recycling.gcrodr`).

    Returns:
        `SequenceResult`.
    """
    import scipy.sparse.linalg as sla

    from physim.solvers.recycling import RecycleSpace, gcrodr, gmres_arnoldi

    check_choice("method", method, SEQUENCE_METHODS)
    check_range("rtol", rtol, 0.0, 1.0)
    check_range("atol", atol, 0.0)
    check_int("m", m, 2)
    check_int("k", k, 1, m - 1)
    check_int("update_every", update_every, 1)
    get_A = matrices if callable(matrices) else (lambda i: matrices[i])
    N = n_systems if callable(matrices) else len(matrices)
    if N is None:
        raise ConfigError("n_systems", None, "the number of systems when matrices is a function")
    get_b = rhs if callable(rhs) else (lambda i: np.asarray(rhs[i], dtype=np.float64))
    order = np.arange(N) if order is None else np.asarray(order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(N)):
        raise ConfigError("order", f"array of length {len(order)}", f"a permutation of range({N})")
    if space is None:
        space = RecycleSpace(k=k)
    if space.k != k:
        raise ConfigError("space", f"RecycleSpace(k={space.k})", f"a recycle space with k = {k}")
    CU = [] if CU is None else CU
    xs: dict[int, np.ndarray] = {}
    its = np.zeros(N, dtype=np.int64)
    conv = np.zeros(N, dtype=bool)
    res = np.zeros(N)
    secs = np.zeros(N)
    cpu = np.zeros(N)
    prev = None
    steps = order
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(order, desc=f"solve_sequence[{method}]", unit="system")
    for i in steps:
        i = int(i)
        A = get_A(i)
        b = get_b(i)
        n = b.shape[0]
        mi = 10 * n if maxiter is None else maxiter
        t0, c0 = time.perf_counter(), time.process_time()
        Mi = _scipy_prec(M, A)
        x0 = prev if warm_start else None
        if not recycle:
            space.reset()
            CU.clear()
        if method == "gcrodr":
            out = gcrodr(A, b, x0=x0, M=Mi, rtol=rtol, atol=atol, m=m, recycle=space, maxiter=mi,
                         update_every=update_every)
            x, nit = out.x.numpy(), int(out.iterations)
        elif method == "gmres_arnoldi":
            out = gmres_arnoldi(A, b, x0=x0, M=Mi, rtol=rtol, atol=atol, m=m, maxiter=mi)
            x, nit = out.x.numpy(), int(out.iterations)
        else:
            count = [0]

            def mv(v, _A=A, _c=count):
                _c[0] += 1
                return _A @ v

            op = sla.LinearOperator(A.shape, matvec=mv, dtype=np.float64)
            if method == "gmres":
                x, _ = sla.gmres(op, b, x0=x0, rtol=rtol, atol=atol, restart=m, maxiter=max(mi // m, 1), M=Mi)
            else:
                x, _ = sla.gcrotmk(op, b, x0=x0, rtol=rtol, atol=atol, m=m, k=k, CU=CU, discard_C=True,
                                   maxiter=max(mi // m, 1), M=Mi)
            nit = count[0]
        secs[i] = time.perf_counter() - t0
        cpu[i] = time.process_time() - c0
        r = float(np.linalg.norm(b - A @ x))  # verification, outside the timed region
        xs[i] = x
        its[i] = nit
        res[i] = r
        conv[i] = r <= max(rtol * float(np.linalg.norm(b)), atol)
        prev = x
    if not conv.all():
        log.warning("solve_sequence[%s]: %d of %d systems did not converge", method, int((~conv).sum()), N)
    X = np.stack([xs[i] for i in range(N)])
    info = {"total_seconds": float(secs.sum()), "total_cpu_seconds": float(cpu.sum()),
            "total_iterations": int(its.sum()), "m": m, "k": k, "update_every": update_every,
            "rtol": rtol, "warm_start": warm_start}
    return SequenceResult(X, its, conv, res, secs, order, method, info)
