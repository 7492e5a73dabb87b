"""Thin adapter between physim's solver interface and ``scipy.sparse.linalg``.

`scipy_solve` runs a scipy Krylov method (``cg``, ``minres``, ``gmres``, ``bicgstab``,
``gcrotmk``, ``lgmres``) on each right-hand side of a batch and returns the same
`SolveResult` as physim's torch solvers, with iterations counted as products with A (scipy's
own counters mean different things per method) and the residual history recorded from them.
`as_scipy_operator` goes the other way: any operator physim accepts becomes a scipy
``LinearOperator`` (on the CPU).
"""

from __future__ import annotations

import numpy as np
import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError
from physim.solvers.operators import LinearOperator, as_operator, check_rhs
from physim.solvers.preconditioners import Preconditioner, make_preconditioner
from physim.solvers.result import SolveResult

__all__ = ["SCIPY_METHODS", "as_scipy_operator", "scipy_solve"]

SCIPY_METHODS = ("cg", "minres", "gmres", "bicgstab", "gcrotmk", "lgmres")
_MAX_RESTARTS = 4


def as_scipy_operator(A: object, n: int | None = None, *, dtype: torch.dtype = torch.float64):
    """Wrap a physim operator (matrix, callable, `LinearOperator`, `Preconditioner`) as a scipy LinearOperator.

    Args:
        A: The operator; a callable must map (B, n) tensors to (B, n) tensors.
        n: Its size (needed for callables; read from the shape otherwise).
        dtype: Torch dtype the operator is applied in.
    """
    import scipy.sparse.linalg as sla

    if isinstance(A, Preconditioner):
        if n is None:
            raise ConfigError("n", n, "the size of the preconditioner's vectors")
        if A.apply_numpy is not None:  # no torch round trip per application
            return sla.LinearOperator((n, n), matvec=A.apply_numpy, dtype=np.float64)
        apply = A
    else:
        if n is None:
            shape = getattr(A, "shape", None)
            if shape is None:
                raise ConfigError("n", n, "the operator size for a matrix-free operator")
            n = int(shape[-1])
        apply = A if isinstance(A, LinearOperator) else as_operator(A, n=n, batch=1, dtype=dtype,
                                                                   device=torch.device("cpu"))

    def matmat(X: np.ndarray) -> np.ndarray:
        T = torch.as_tensor(np.ascontiguousarray(np.asarray(X).reshape(n, -1).T), dtype=dtype)
        return apply(T).detach().cpu().numpy().T

    return sla.LinearOperator((n, n), matvec=lambda v: matmat(v)[:, 0], matmat=matmat,
                              dtype=np.float64 if dtype == torch.float64 else np.float32)


def scipy_solve(
    A: object,
    b: object,
    *,
    method: str = "gmres",
    x0: object = None,
    M: object = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    raise_on_fail: bool = False,
    **kwargs,
) -> SolveResult:
    """Solve A x = b with a scipy Krylov method, one right-hand side after the other.

    Args:
        A: Anything physim's solvers accept (a sparse matrix is passed to scipy as is).
        b: Right-hand side(s), shape (n,) or (B, n), torch or numpy.
        method: One of `SCIPY_METHODS`.
        x0: Initial guess (default zeros).
        M: Preconditioner (name, `Preconditioner`, matrix or callable), as for `physim.solvers.cg`.
        rtol, atol: Stopping tolerance ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Passed to scipy (its meaning differs per method: GMRES counts restart cycles).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.
        **kwargs: Further keyword arguments of the scipy function (``restart``, ``m``, ``k``,
            ``CU`` …).

    Returns:
        `SolveResult` with x as a torch tensor; iterations are products with A. The residual
        history has one entry per scipy callback: per iteration for cg, minres and bicgstab, per
        restart cycle for gmres, gcrotmk and lgmres. When scipy reports success by its own stopping
        test but the true residual misses ours, the solve is restarted from its result (up to 3 times).
    """
    import scipy.sparse.linalg as sla

    check_choice("method", method, SCIPY_METHODS)
    check_range("rtol", rtol, 0.0, 1.0)
    check_range("atol", atol, 0.0)
    if maxiter is not None:
        check_int("maxiter", maxiter, 1)
    bt = check_rhs(b)
    squeeze = bt.ndim == 1
    Bt = bt if bt.ndim == 2 else bt[None]
    batch, n = Bt.shape
    op = as_operator(A, n=n, batch=1, dtype=Bt.dtype, device=torch.device("cpu"))
    if op.kind == "batched_dense":  # pragma: no cover - batch=1 guard
        raise ConfigError("A", "a batch of matrices", "one matrix shared by the batch for scipy_solve")
    prec = make_preconditioner(M, op, n=n, batch=1)
    M_sp = None if prec is None else as_scipy_operator(prec, n, dtype=Bt.dtype)
    if x0 is not None:
        X0 = check_rhs(x0, "x0")
        X0 = X0 if X0.ndim == 2 else X0[None]
        if X0.shape != Bt.shape:
            raise ConfigError("x0", f"tensor of shape {tuple(X0.shape)}", f"the shape of b, {tuple(Bt.shape)}")
    fn = getattr(sla, method)
    base = op.matrix if op.kind == "sparse" else (op.matrix.cpu().numpy() if op.kind == "dense" else None)
    xs, convs, its, hists, tols = [], [], [], [], []
    for i in range(batch):
        bi = Bt[i].detach().cpu().numpy().astype(np.float64)
        count = [0]
        hist = [float(np.linalg.norm(bi if x0 is None else bi - _apply(op, base, X0[i].cpu().numpy())))]

        def matvec(v, _count=count):
            _count[0] += 1
            return _apply(op, base, np.asarray(v).reshape(-1))

        lin = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)

        def callback(xk, _hist=hist, _bi=bi):
            # Recomputed with the raw matrix so the history is the true residual, uncounted.
            _hist.append(float(np.linalg.norm(_bi - _apply(op, base, np.asarray(xk)))))

        extra = dict(kwargs)
        if method == "gmres":
            extra.setdefault("callback_type", "x")
        tol_args = {"rtol": rtol, "atol": atol}
        if method == "minres":  # scipy's minres has no atol: fold it into rtol
            bn = float(np.linalg.norm(bi))
            tol_args = {"rtol": max(rtol, atol / bn) if bn > 0 else rtol}
        if maxiter is not None:
            extra["maxiter"] = maxiter
        tol = max(rtol * float(np.linalg.norm(bi)), atol)
        x = None if x0 is None else X0[i].cpu().numpy()
        for _ in range(_MAX_RESTARTS):
            x, info = fn(lin, bi, x0=x, M=M_sp, callback=callback, **tol_args, **extra)
            r = float(np.linalg.norm(bi - _apply(op, base, x)))
            # scipy's own stopping tests differ per method (minres measures against ‖A‖‖x‖, gmres with a
            # left preconditioner against M r): restart from x until the true residual meets ours.
            if r <= tol or info != 0:
                break
            # Tighten scipy's tolerance by the factor still missing (and a margin) for the restart.
            factor = max(0.5 * tol / r, 1e-6)
            tol_args = {key: value * factor for key, value in tol_args.items()}
        hist.append(r)
        xs.append(x)
        convs.append(r <= tol)
        its.append(count[0])
        hists.append(hist)
        tols.append(tol)
    K = max(len(h) for h in hists)
    res = np.array([h + [h[-1]] * (K - len(h)) for h in hists])
    dev = Bt.device
    X = torch.as_tensor(np.stack(xs), dtype=Bt.dtype, device=dev)
    conv_t = torch.tensor(convs, device=dev)
    its_t = torch.tensor(its, device=dev)
    res_t = torch.as_tensor(res, dtype=Bt.dtype, device=dev)
    tol_t = torch.tensor(tols, dtype=Bt.dtype, device=dev)
    if squeeze:
        X, conv_t, its_t, res_t, tol_t = X[0], conv_t[0], its_t[0], res_t[0], tol_t[0]
    out = SolveResult(X, conv_t, its_t, res_t, tol_t, f"scipy.{method}", {"matvecs": int(sum(its))})
    if raise_on_fail:
        out.raise_if_not_converged()
    return out


def _apply(op: LinearOperator, base, v: np.ndarray) -> np.ndarray:
    if base is not None:
        return np.asarray(base @ v, dtype=np.float64)
    return op(torch.as_tensor(v, dtype=op.dtype)[None])[0].detach().cpu().numpy().astype(np.float64)
