"""Successive over-relaxation (SOR) for sparse systems, for one or many relaxation factors at once.

    x_i ← (1 − ω) x_i + ω (b_i − Σ_{j≠i} a_ij x_j) / a_ii     (rows in natural order)

converges for SPD A and 0 < ω < 2, and ω decides how fast: for the 2-D Laplacian the optimal
ω* = 2 / (1 + sin(πh)) needs O(1/h) sweeps where Gauss–Seidel (ω = 1) needs O(1/h²). `sor`
runs in a Warp kernel on the CPU (the sweep is sequential); with an array of ω it solves the
same system once per ω, which is how `physim.solvers.bandits` finds the best ω in hindsight.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physim.config import check_int, check_range
from physim.errors import ConfigError
from physim.solvers.operators import to_scipy_sparse
from physim.solvers.result import SolveResult

__all__ = ["optimal_omega_laplacian", "sor"]


def optimal_omega_laplacian(s: int) -> float:
    """Young's optimal ω = 2 / (1 + sin(π h)) for the 5-point Laplacian on s × s interior nodes, h = 1/(s+1)."""
    check_int("s", s, 1)
    return 2.0 / (1.0 + math.sin(math.pi / (s + 1)))


def sor(
    A: object,
    b: object,
    *,
    omega: float | np.ndarray | torch.Tensor = 1.0,
    x0: object = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int = 10_000,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve A x = b by SOR, for one relaxation factor or for each of several.

    Args:
        A: Square sparse or dense matrix with a non-zero diagonal (SPD for guaranteed convergence).
        b: Right-hand side, shape (n,).
        omega: Relaxation factor in (0, 2), or an array of W factors: the system is then solved
            W times and the result is batched over ω.
        x0: Initial guess, shape (n,) (default zeros).
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Sweep limit (the Learning-to-Relax experiments cap at 10 000).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; for an array of ω, fields are batched over ω (x of shape (W, n)).
        Iterations count sweeps; residuals hold the true residual after every sweep.
    """
    from physim import runtime

    check_range("rtol", rtol, 0.0, 1.0)
    check_range("atol", atol, 0.0)
    check_int("maxiter", maxiter, 1)
    S = to_scipy_sparse(A).astype(np.float64)
    n = S.shape[0]
    if S.shape[0] != S.shape[1]:
        raise ConfigError("A", f"matrix of shape {S.shape}", "a square matrix")
    if not np.isfinite(S.data).all():
        raise ConfigError("A", "matrix with non-finite entries (NaN or inf)", "finite entries")
    diag = S.diagonal()
    if (diag == 0).any():
        raise ConfigError("A", f"matrix with {int((diag == 0).sum())} zero diagonal entries",
                          "a non-zero diagonal for SOR")
    bv = np.asarray(b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if bv.shape != (n,):
        raise ConfigError("b", f"array of shape {bv.shape}", f"shape ({n},) to match A")
    if not np.isfinite(bv).all():
        raise ConfigError("b", "vector with non-finite entries (NaN or inf)", "finite entries")
    om = np.atleast_1d(np.asarray(omega.detach().cpu().numpy() if isinstance(omega, torch.Tensor) else omega,
                                  dtype=np.float64))
    scalar = np.ndim(omega) == 0
    if om.ndim != 1 or not ((om > 0) & (om < 2)).all():
        raise ConfigError("omega", omega, "relaxation factor(s) in (0, 2)")
    W = om.shape[0]
    X0 = np.zeros((W, n))
    if x0 is not None:
        xv = np.asarray(x0.detach().cpu().numpy() if isinstance(x0, torch.Tensor) else x0, dtype=np.float64)
        if xv.shape != (n,):
            raise ConfigError("x0", f"array of shape {xv.shape}", f"shape ({n},)")
        X0[:] = xv
    tol = max(rtol * float(np.linalg.norm(bv)), atol)
    S.sort_indices()
    wp = runtime.init_warp()
    from physim.solvers import sor_kernels

    dev = "cpu"  # one thread per ω runs a sequential sweep: a host kernel
    x = wp.array(X0, dtype=wp.float64, device=dev)
    hist = wp.zeros((W, maxiter + 1), dtype=wp.float64, device=dev)
    its = wp.zeros(W, dtype=wp.int32, device=dev)
    wp.launch(
        sor_kernels.sor_solve, dim=W,
        inputs=[wp.array(S.indptr.astype(np.int32), device=dev), wp.array(S.indices.astype(np.int32), device=dev),
                wp.array(S.data, device=dev), wp.array(diag, device=dev), wp.array(bv, device=dev),
                wp.array(om, device=dev), wp.float64(tol), wp.int32(maxiter)],
        outputs=[x, hist, its], device=dev,
    )
    iters = its.numpy().astype(np.int64)
    H = hist.numpy()[:, : int(iters.max()) + 1]
    for w in range(W):  # a system that stopped early repeats its last residual
        H[w, iters[w] + 1:] = H[w, iters[w]]
    final = H[np.arange(W), iters]
    X = torch.from_numpy(x.numpy())
    conv = torch.from_numpy(final <= tol)
    res_t = torch.from_numpy(H)
    its_t = torch.from_numpy(iters)
    tol_t = torch.full((W,), tol, dtype=torch.float64)
    if scalar:
        X, conv, its_t, res_t, tol_t = X[0], conv[0], its_t[0], res_t[0], tol_t[0]
    result = SolveResult(X, conv, its_t, res_t, tol_t, "sor", {"omega": om.tolist()})
    if raise_on_fail:
        result.raise_if_not_converged()
    return result
