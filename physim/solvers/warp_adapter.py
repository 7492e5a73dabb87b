"""Thin adapter to Warp's iterative solvers (``warp.optim.linear``) for Warp arrays.

Simulators written in Warp (mpm, tactile) keep their matrices as ``warp.sparse.BsrMatrix``
and their vectors as Warp arrays. `warp_solve` runs Warp's own CG / CR / BiCGStab / GMRES on
them (on the Warp device, CUDA graphs included) and reports the outcome as a physim
`SolveResult` whose ``x`` is a zero-copy torch view of the Warp solution. `to_warp_bsr` builds
a BsrMatrix from a scipy or torch sparse matrix.

Warp is imported lazily (on first call), never when physim.solvers is imported.
"""

from __future__ import annotations

import numpy as np
import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError
from physim.solvers.operators import to_scipy_sparse
from physim.solvers.result import SolveResult

__all__ = ["WARP_METHODS", "to_warp_bsr", "warp_solve"]

WARP_METHODS = ("cg", "cr", "bicgstab", "gmres")


def to_warp_bsr(A: object, *, dtype: str = "float64", device: str | None = None):
    """Convert a scipy/torch sparse (or dense) matrix to a ``warp.sparse.BsrMatrix`` with 1×1 blocks.

    Args:
        A: Square matrix.
        dtype: ``"float32"`` or ``"float64"``.
        device: Warp device (default: physim's device).
    """
    from physim import runtime

    wp = runtime.init_warp()
    import warp.sparse as wps

    check_choice("dtype", dtype, ("float32", "float64"))
    S = to_scipy_sparse(A).tocoo()
    if S.shape[0] != S.shape[1]:
        raise ConfigError("A", f"matrix of shape {S.shape}", "a square matrix")
    if not np.isfinite(S.data).all():
        raise ConfigError("A", "matrix with non-finite entries (NaN or inf)", "finite entries")
    dev = device or runtime.warp_device()
    np_dtype = np.float64 if dtype == "float64" else np.float32
    return wps.bsr_from_triplets(
        S.shape[0], S.shape[1],
        wp.array(S.row.astype(np.int32), device=dev),
        wp.array(S.col.astype(np.int32), device=dev),
        wp.array(S.data.astype(np_dtype), device=dev),
        prune_numerical_zeros=False,
    )


def _torch_device(device) -> torch.device:
    return torch.device("cpu") if str(device) == "cpu" else torch.device("cuda", device.ordinal)


def _torch_dtype(wp, A) -> torch.dtype:
    return torch.float64 if A.scalar_type == wp.float64 else torch.float32


def _residual_norm(wp, A, x, b) -> float:
    import warp.optim.linear as wl
    import warp.sparse as wps

    r = wp.clone(b)
    if isinstance(A, wl.LinearOperator):
        A.matvec(x, b, r, alpha=-1.0, beta=1.0)
    else:
        wps.bsr_mv(A, x, r, alpha=-1.0, beta=1.0)
    return float(np.linalg.norm(r.numpy()))


def warp_solve(
    A: object,
    b: object,
    *,
    method: str = "cg",
    x0: object = None,
    M: object = "diag",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    restart: int = 31,
    check_every: int = 10,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve A x = b with ``warp.optim.linear`` and report it as a `SolveResult`.

    Args:
        A: ``warp.sparse.BsrMatrix``, ``warp.optim.linear.LinearOperator``, or a scipy/torch sparse
            matrix (converted with `to_warp_bsr`).
        b: Warp array or torch tensor of shape (n,).
        method: ``"cg"`` / ``"cr"`` (symmetric), ``"bicgstab"`` or ``"gmres"``.
        x0: Initial guess (Warp array or torch tensor; default zeros). A Warp array is used
            in place and holds the solution afterwards.
        M: Warp preconditioner: a name for ``warp.optim.linear.preconditioner`` (``"diag"``,
            ``"diag_abs"``, ``"id"``), a Warp LinearOperator, or None.
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Iteration limit (default: n).
        restart: Krylov dimension for GMRES.
        check_every: Iterations between host-side convergence checks (and history entries).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult` for one system: ``x`` is a torch view of the Warp solution; residuals are
        those Warp reported every `check_every` iterations, then the recomputed true residual.
    """
    from physim import runtime

    wp = runtime.init_warp()
    import warp.optim.linear as wl
    import warp.sparse as wps

    check_choice("method", method, WARP_METHODS)
    check_range("rtol", rtol, 0.0, 1.0)
    check_range("atol", atol, 0.0)
    check_int("restart", restart, 1)
    check_int("check_every", check_every, 1)
    if not isinstance(A, (wps.BsrMatrix, wl.LinearOperator)):
        A = to_warp_bsr(A, dtype="float32" if isinstance(b, torch.Tensor) and b.dtype == torch.float32 else "float64")
    n = int(A.shape[0])
    if A.shape[0] != A.shape[1]:
        raise ConfigError("A", f"operator of shape {tuple(A.shape)}", "a square operator")
    if isinstance(b, torch.Tensor):
        if b.ndim != 1 or b.shape[0] != n:
            raise ConfigError("b", f"tensor of shape {tuple(b.shape)}", f"shape ({n},) to match A")
        if not bool(torch.isfinite(b).all()):
            raise ConfigError("b", "tensor with non-finite entries (NaN or inf)", "finite entries")
        b = wp.from_torch(b.detach().to(device=_torch_device(A.device), dtype=_torch_dtype(wp, A)).contiguous())
    if b.shape[0] != n:
        raise ConfigError("b", f"array of shape {tuple(b.shape)}", f"shape ({n},) to match A")
    if x0 is None:
        x = wp.zeros_like(b)
    elif isinstance(x0, torch.Tensor):
        if tuple(x0.shape) != (n,):
            raise ConfigError("x0", f"tensor of shape {tuple(x0.shape)}", f"shape ({n},)")
        x0 = x0.detach().to(device=_torch_device(A.device), dtype=_torch_dtype(wp, A))
        x = wp.from_torch(x0.clone().contiguous())
    else:
        x = x0
    if maxiter is None:
        maxiter = n
    check_int("maxiter", maxiter, 1)
    prec = wl.preconditioner(A, M) if isinstance(M, str) else M
    bnorm = float(np.linalg.norm(b.numpy()))
    tol_abs = max(rtol * bnorm, atol)
    history: list[float] = []

    def callback(i, err, tol):
        history.append(float(err))

    kwargs = {"tol": rtol, "atol": atol, "maxiter": maxiter, "M": prec, "callback": callback,
              "check_every": check_every}
    if method == "gmres":
        kwargs["restart"] = restart
    iterations, _, _ = getattr(wl, method)(A, b, x, **kwargs)
    r = _residual_norm(wp, A, x, b)
    history.append(r)
    dev = _torch_device(x.device)
    X = wp.to_torch(x)
    result = SolveResult(
        X,
        torch.tensor(r <= tol_abs, device=dev),
        torch.tensor(int(iterations), device=dev),
        torch.tensor(history, dtype=X.dtype, device=dev),
        torch.tensor(tol_abs, dtype=X.dtype, device=dev),
        f"warp.{method}",
        {},
    )
    if raise_on_fail:
        result.raise_if_not_converged()
    return result
