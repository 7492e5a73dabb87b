"""GCRO-DR: GMRES with deflated restarting and Krylov subspace recycling across systems.

Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces for sequences of
linear systems", SIAM J. Sci. Comput. 28(5), 2006 — the method PETSc/HPDDM runs as
``-ksp_hpddm_type gcrodr`` in SKR. Each restart cycle keeps k harmonic Ritz vectors (the
approximate eigenvectors of the smallest eigenvalues, which slow GMRES down) and spends only
m − k new Arnoldi steps. After a system is solved its subspace U is carried to the next one:
C = A_new U is re-orthonormalised there (k products with A) and the new system starts already
deflated. Related systems in a good order (see `physim.solvers.skr`) then need far fewer
iterations.

Written on numpy/scipy (the systems of data generation are scipy sparse matrices): A may be
anything with ``A @ v`` on 1-D numpy arrays; the preconditioner is applied on the right
(x = M y), so the reported residual is the true one. Real arithmetic.

    space = RecycleSpace(k=20)
    for A, b in systems:
        res = gcrodr(A, b, m=40, recycle=space, rtol=1e-8)    # space.U carries over
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import torch

from physim.config import check_int, check_range
from physim.errors import ConfigError
from physim.solvers.result import SolveResult

__all__ = ["RecycleSpace", "gcrodr", "gmres_arnoldi"]


@dataclass
class RecycleSpace:
    """The k-dimensional subspace carried from one system to the next.

    Attributes:
        k: Number of recycled vectors.
        U: Basis of the recycled subspace in the (right-preconditioned) solution space, shape (n, k);
            None before the first solve.
        C: A M U on the matrix of the last solve, orthonormal columns, shape (n, k). If the next
            system has the same operator (checked with one product, see `gcrodr`), C is reused and
            the k products that would rebuild it are saved.
    """

    k: int = 20
    U: np.ndarray | None = None
    C: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_int("k", self.k, 1)

    def reset(self) -> None:
        """Forget the carried subspace (e.g. when the next systems are unrelated)."""
        self.U = None
        self.C = None


def _as_matvec(A: object, n: int) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(A, torch.Tensor):
        from physim.solvers.operators import to_scipy_sparse

        A = to_scipy_sparse(A)
    if hasattr(A, "shape") and tuple(A.shape) != (n, n):
        raise ConfigError("A", f"operator of shape {tuple(A.shape)}", f"a square operator of size {n} to match b")
    if hasattr(A, "__matmul__") and not callable(A):
        return lambda v: np.asarray(A @ v).reshape(-1)
    if hasattr(A, "matvec"):
        return lambda v: np.asarray(A.matvec(v)).reshape(-1)
    if callable(A):
        return lambda v: np.asarray(A(v)).reshape(-1)
    raise ConfigError("A", type(A).__name__, "a matrix (A @ v) or a callable v -> A v on numpy vectors")


def _as_prec(M: object, A: object) -> Callable[[np.ndarray], np.ndarray] | None:
    if M is None:
        return None
    if isinstance(M, str):
        from physim.solvers.operators import as_operator
        from physim.solvers.preconditioners import make_preconditioner

        op = as_operator(A, n=A.shape[0], batch=1, dtype=torch.float64, device=torch.device("cpu"))
        M = make_preconditioner(M, op, n=A.shape[0], batch=1)
    if getattr(M, "apply_numpy", None) is not None:  # a physim Preconditioner with a numpy path
        return M.apply_numpy
    if hasattr(M, "apply") and hasattr(M, "symmetric"):  # a physim Preconditioner on torch batches
        prec = M
        return lambda v: prec(torch.from_numpy(np.ascontiguousarray(v))[None])[0].numpy()
    if hasattr(M, "matvec"):
        return lambda v: np.asarray(M.matvec(v)).reshape(-1)
    if callable(M):
        return lambda v: np.asarray(M(v)).reshape(-1)
    return lambda v: np.asarray(M @ v).reshape(-1)


def _real_basis(vecs: np.ndarray, k: int) -> np.ndarray:
    """An orthonormal real basis of span(Re, Im of the given eigenvectors), k columns."""
    if np.iscomplexobj(vecs):
        stacked = np.concatenate([vecs.real, vecs.imag], axis=1)
    else:
        stacked = vecs
    q, s, _ = np.linalg.svd(stacked, full_matrices=False)
    keep = min(k, int((s > s[0] * 1e-12).sum())) if s.size else 0
    return q[:, :keep]


def _harmonic_ritz(G: np.ndarray, W: np.ndarray, k: int) -> np.ndarray:
    """k vectors of the generalised problem Gᵀ G z = θ Gᵀ W z with the smallest |θ|.

    Solved as the standard problem G⁺ W z = μ z, μ = 1/θ (G has full column rank, so GᵀG is
    invertible): the same eigenvectors, and a standard eigensolver costs half the QZ algorithm.
    """
    try:
        Qg, Rg = np.linalg.qr(G)
        mu, Z = np.linalg.eig(sla.solve_triangular(Rg, Qg.T @ W, check_finite=False))
    except (np.linalg.LinAlgError, ValueError):
        return np.zeros((G.shape[1], 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(mu != 0, 1.0 / np.where(mu != 0, mu, 1.0), np.inf)
    finite = np.isfinite(theta) & np.isfinite(mu)
    if not finite.any():
        return np.zeros((G.shape[1], 0))
    order = np.argsort(np.abs(np.where(finite, theta, np.inf)))
    chosen = order[: min(k, int(finite.sum()))]
    # Keep complex-conjugate pairs together: take the partner of the last one if it is complex.
    if np.iscomplexobj(theta) and len(chosen) < finite.sum():
        last = theta[chosen[-1]]
        if abs(last.imag) > 0:
            partner = order[len(chosen)]
            chosen = np.append(chosen, partner)
    return _real_basis(Z[:, chosen], k)


def _arnoldi(apply: Callable, v0: np.ndarray, steps: int, Ct: np.ndarray | None, beta: float = 0.0,
             tol: float = 0.0):
    """Arnoldi on (I − C Cᵀ)·apply, classical Gram–Schmidt (a second pass only when needed).

    C and the new basis share one row-major buffer Z = [Cᵀ; Vᵀ] of shape (k + steps + 1, n), so the
    projection on both is a single contiguous matrix-vector product, and Z[: k + j + 1] is V̂ᵀ.

    With ``tol > 0`` the cycle stops as soon as the least-squares residual min_y ‖β e₁ − H y‖
    (the GMRES residual of this cycle; for GCRO-DR the same, since the C rows of Ĝ carry a diagonal
    block) drops to ``tol``: one Givens rotation per step, tracked by the one row of the rotated
    basis it needs, so a cycle that converges early spends no further products with A.

    Returns:
        (Z, H, B, j): the buffer, the (j + 1) × j Hessenberg matrix, B = Cᵀ A V (k × j), and the
        number j of steps taken (fewer than `steps` on breakdown, the space then being invariant, or
        on convergence).
    """
    n = v0.shape[0]
    kc = 0 if Ct is None else Ct.shape[0]
    Z = np.empty((kc + steps + 1, n))
    if kc:
        Z[:kc] = Ct
    H = np.zeros((steps + 1, steps))
    B = np.zeros((kc, steps))
    Z[kc] = v0
    q = np.zeros(steps + 1)  # the row of the accumulated Givens rotations that meets the next column
    q[0] = 1.0
    rho = beta
    done = steps
    for j in range(steps):
        w = apply(Z[kc + j])
        basis = Z[: kc + j + 1]
        norm_in = math.sqrt(w @ w)
        for _ in range(2):
            h = basis @ w
            w -= h @ basis
            B[:, j] += h[:kc]
            H[: j + 1, j] += h[kc:]
            hn = math.sqrt(w @ w)
            # "Twice is enough" (Kahan–Parlett): a second pass only when cancellation was severe.
            if hn > 0.7071 * norm_in:
                break
            norm_in = hn
        H[j + 1, j] = hn
        if hn <= 1e-14 * max(np.abs(H[: j + 1, j]).max(), 1e-300):
            Z[kc + j + 1] = 0.0  # invariant subspace: the solution is in the current space
            done = j + 1
            break
        Z[kc + j + 1] = w
        Z[kc + j + 1] *= 1.0 / hn
        if tol > 0.0:
            a = float(q[: j + 1] @ H[: j + 1, j])
            den = math.hypot(a, hn)
            rho *= hn / den
            q[: j + 1] *= -hn / den
            q[j + 1] = a / den
            if rho <= tol:
                done = j + 1
                break
    return Z[: kc + done + 1], H[: done + 1, :done], B[:, :done], done


def _same_operator(space: RecycleSpace, apply_AM: Callable, n: int, rtol: float = 1e-10) -> bool:
    """Whether A M is still the operator that produced space.C = A M U: one product with a fixed mix of U.

    A changed matrix (or preconditioner) moves A M U w off C w for any w outside a measure-zero set, so one
    product tells; it costs 1 product instead of the k that rebuild C.
    """
    if space.C is None or space.C.shape != (n, space.k):
        return False
    w = np.random.default_rng(20240).standard_normal(space.k)
    expect = space.C @ w
    return bool(np.linalg.norm(apply_AM(space.U @ w) - expect) <= rtol * np.linalg.norm(expect))


def _right_inverse(P: np.ndarray, R: np.ndarray) -> np.ndarray:
    """P R⁻¹ for a small upper-triangular R."""
    return sla.solve_triangular(R, P.T, trans="T", lower=False).T


class _System:
    """One checked system A x = b on numpy: products with A counted, right preconditioning, residual history."""

    def __init__(self, A, b, x0, M, rtol: float, atol: float, maxiter: int | None, method: str) -> None:
        check_range("rtol", rtol, 0.0, 1.0)
        check_range("atol", atol, 0.0)
        bt = torch.as_tensor(b) if not isinstance(b, torch.Tensor) else b
        if bt.ndim != 1:
            raise ConfigError("b", f"array of shape {tuple(bt.shape)}",
                              f"a vector of shape (n,) ({method} solves one system)")
        bv = bt.detach().cpu().numpy().astype(np.float64)
        if not np.isfinite(bv).all():
            raise ConfigError("b", "vector with non-finite entries (NaN or inf)", "finite entries")
        self.method, self.bt, self.bv = method, bt, bv
        self.n = n = bv.shape[0]
        self.maxiter = 10 * n if maxiter is None else maxiter
        check_int("maxiter", self.maxiter, 1)
        self.matvec = _as_matvec(A, n)
        self.prec = _as_prec(M, A)
        self.count = [0]
        x = np.zeros(n) if x0 is None else np.array(torch.as_tensor(x0).detach().cpu().numpy(), dtype=np.float64)
        if x.shape != (n,):
            raise ConfigError("x0", f"array of shape {x.shape}", f"shape ({n},) like b")
        self.x = x
        self.r = bv - self.apply_A(x) if x0 is not None else bv.copy()
        self.tol = max(rtol * np.linalg.norm(bv), atol)
        self.history = [float(np.linalg.norm(self.r))]
        self.verified = True

    def apply_A(self, v: np.ndarray) -> np.ndarray:
        self.count[0] += 1
        return self.matvec(v)

    def apply_AM(self, v: np.ndarray) -> np.ndarray:
        return self.apply_A(v if self.prec is None else self.prec(v))

    def to_x(self, y: np.ndarray) -> np.ndarray:
        return y if self.prec is None else self.prec(y)

    def check(self, x: np.ndarray, r: np.ndarray) -> float:
        """The residual norm after a cycle; confirmed with the true residual (b − A x) before stopping."""
        rn = float(np.linalg.norm(r))
        self.verified = False
        if rn <= self.tol:
            r[:] = self.bv - self.apply_A(x)
            rn = float(np.linalg.norm(r))
            self.verified = True
        return rn

    def result(self, x: np.ndarray, cycles: int, info: dict) -> SolveResult:
        if cycles and not self.verified:
            self.history[-1] = float(np.linalg.norm(self.bv - self.apply_A(x)))
        final = self.history[-1]
        dtype = self.bt.dtype if self.bt.is_floating_point() else torch.float64
        return SolveResult(
            torch.as_tensor(x, dtype=dtype), torch.tensor(final <= self.tol), torch.tensor(self.count[0]),
            torch.tensor(self.history, dtype=torch.float64), torch.tensor(self.tol, dtype=torch.float64), self.method,
            info,
        )


def _gmres_cycle(apply_AM, to_x, x, r, beta: float, steps: int, tol: float):
    """One GMRES cycle from residual r (norm beta): returns (x, r, Vᵀ, H, j) after j Arnoldi steps."""
    Vt, H, _, j = _arnoldi(apply_AM, r / beta, steps, None, beta, tol)
    e1 = np.zeros(j + 1)
    e1[0] = beta
    y = np.linalg.lstsq(H, e1, rcond=None)[0]
    x = x + to_x(y @ Vt[:j])
    r = r - (H @ y) @ Vt
    return x, r, Vt, H, j


def gcrodr(
    A: object,
    b: object,
    *,
    x0: object = None,
    M: object = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    m: int = 40,
    recycle: RecycleSpace | None = None,
    k: int = 20,
    maxiter: int | None = None,
    raise_on_fail: bool = False,
    update_every: int = 1,
) -> SolveResult:
    """Solve A x = b by GCRO-DR(m, k), starting from and updating a recycled subspace.

    Args:
        A: Square matrix (scipy sparse, numpy, anything with ``A @ v``) or a callable v ↦ A v on
            1-D numpy arrays.
        b: Right-hand side, shape (n,), numpy or torch.
        x0: Initial guess (default zeros).
        M: Right preconditioner: a physim preconditioner name (``"ilu"``, ``"jacobi"``, ``"amg"``,
            ``"ichol"``), a `Preconditioner`, a scipy LinearOperator or a callable on numpy vectors.
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol) (true residual).
        m: Subspace dimension per cycle (m − k new Arnoldi vectors once a space is recycled).
        recycle: The carried `RecycleSpace` (updated in place). None: a fresh one with `k` vectors,
            used within this solve only.
        k: Recycled vectors when `recycle` is None.
        maxiter: Limit on products with A (default 10 n).
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.
        update_every: Refresh the recycled space (harmonic Ritz vectors, new C and U: three k × (k + j) × n
            products and a small eigenproblem) every this many deflated cycles, and always on the last
            one; 1 is Parks et al.'s GCRO-DR. In between, the cycle deflates with the current C.

    Returns:
        `SolveResult` (1 system): iterations count every product with A, including the k needed to
        bring a carried subspace onto the new matrix; residuals are recorded once per cycle;
        ``info`` has ``"cycles"`` and ``"recycled"`` (whether a carried subspace was used).
    """
    sys_ = _System(A, b, x0, M, rtol, atol, maxiter, "gcrodr")
    n, tol, history, apply_AM, to_x = sys_.n, sys_.tol, sys_.history, sys_.apply_AM, sys_.to_x
    x, r, count, maxiter = sys_.x, sys_.r, sys_.count, sys_.maxiter
    space = recycle if recycle is not None else RecycleSpace(k=k)
    kk = space.k
    check_int("m", m, kk + 1)
    check_int("update_every", update_every, 1)
    deflated = 0
    Ut = Ct = CtU = None  # recycled bases as rows: U (n, k) and C = A M U (n, k), C orthonormal; CtU = Cᵀ U
    recycled = False
    cycles = 0
    if history[-1] > tol and space.U is not None and space.U.shape == (n, kk):
        # Bring the carried subspace onto this matrix: C = orth(A M U), U ← U R⁻¹ so that A M U = C. If the
        # operator is the last solve's (one probe product says so), A M U = C still holds: no products, and
        # the QR only restores C's orthonormality, which drifts over many cycles.
        same = _same_operator(space, apply_AM, n)
        AUt = space.C.T if same else np.stack([apply_AM(space.U[:, i]) for i in range(kk)])
        Q, R = np.linalg.qr(AUt.T)
        if np.abs(np.diag(R)).min() > 1e-12 * np.abs(np.diag(R)).max():
            Rinv = sla.solve_triangular(R, np.eye(kk), lower=False)
            Ct, Ut = Q.T.copy(), Rinv.T @ space.U.T
        if Ct is not None:
            CtU = Ct @ Ut.T
            c_r = Ct @ r
            x = x + to_x(c_r @ Ut)
            r = r - c_r @ Ct
            recycled = True
            history.append(sys_.check(x, r))  # a recycled space alone may solve it: then the true residual decides
    while history[-1] > tol and count[0] < maxiter:
        cycles += 1
        beta = float(np.linalg.norm(r))
        if Ct is None:
            # Plain GMRES(m) cycle; its harmonic Ritz vectors seed the deflation space.
            x, r, Vt, H, j = _gmres_cycle(apply_AM, to_x, x, r, beta, min(m, maxiter - count[0], n), tol)
            if j >= kk + 1:
                Hm = H[:j, :j]
                f = np.linalg.lstsq(Hm.T, np.eye(j)[:, -1], rcond=None)[0]
                Hmod = Hm.copy()
                Hmod[:, -1] += H[j, j - 1] ** 2 * f
                theta, Zr = np.linalg.eig(Hmod)
                order = np.argsort(np.abs(theta))[:kk]
                P = _real_basis(Zr[:, order], kk)
                if P.shape[1] == kk:
                    Q, R = np.linalg.qr(H @ P)
                    coef = _right_inverse(P, R).T
                    Ct = Q.T @ Vt
                    Ut = coef @ Vt[:j]
                    CtU = Q[:j].T @ coef.T  # Cᵀ U = Qᵀ V̂ᵀ V_j coefᵀ, and V̂ᵀ V_j = [I; 0]
        else:
            steps = min(m - kk, max(maxiter - count[0], 1), n)
            Vht, H, Bm, j = _arnoldi(apply_AM, r / beta, steps, Ct, beta, tol)  # V̂ᵀ = [Cᵀ; V_{j+1}ᵀ], rows
            Vt = Vht[kk:]
            # Ũ = U diag(d) (unit columns) is never formed: d is folded into the small matrices instead.
            d = 1.0 / np.sqrt(np.einsum("ij,ij->i", Ut, Ut))
            G = np.zeros((kk + j + 1, kk + j))                                # Ĝ
            G[:kk, :kk] = np.diag(d)
            G[:kk, kk:] = Bm
            G[kk:, kk:] = H
            # V̂ᵀ r = [Cᵀ r; β e₁]: r = β v₁ and the other v are orthogonal to it.
            rhs = np.zeros(kk + j + 1)
            rhs[:kk] = Ct @ r
            rhs[kk] = beta
            # min ‖rhs − Ĝ y‖ by blocks: Ĝ's top rows [D, B] have D diagonal, so they are met exactly by
            # y_u = D⁻¹(Cᵀr − B y_v) once y_v solves the small GMRES problem min ‖β e₁ − H y_v‖.
            y = np.empty(kk + j)
            y[kk:] = np.linalg.lstsq(H, rhs[kk:], rcond=None)[0]
            y[:kk] = (rhs[:kk] - Bm @ y[kk:]) / d
            x = x + to_x((y[:kk] * d) @ Ut + y[kk:] @ Vt[:j])
            r = r - (G @ y) @ Vht
            deflated += 1
            # Between refreshes C and U stay as they are (a fixed augmentation space, still a minimal-residual
            # cycle over range(C) + the Krylov space); the last cycle of a solve always refreshes, so the space
            # carried to the next system holds this system's information.
            if deflated % update_every and float(np.linalg.norm(r)) > tol and count[0] < maxiter:
                history.append(sys_.check(x, r))
                continue
            # V̂ᵀŴ = [[CᵀŨ, 0], [Vᵀ Ũ, I; 0]]: C ⟂ V by construction, so only the Ũ columns need products,
            # and CᵀU is carried from the previous cycle's small matrices, so only VᵀŨ needs n-vectors.
            VW = np.zeros((kk + j + 1, kk + j))
            VW[:kk, :kk] = CtU * d
            VW[kk:, :kk] = (Vt @ Ut.T) * d
            VW[kk: kk + j, kk:] = np.eye(j)
            P = _harmonic_ritz(G, VW, kk)
            if P.shape[1] == kk:
                Q, R = np.linalg.qr(G @ P)
                Ct = Q.T @ Vht
                coef = _right_inverse(P, R).T                                 # new Uᵀ = coef · Ŵᵀ
                coef_u = coef[:, :kk] * d
                CtU = Q.T @ VW @ coef.T                                       # new CᵀU = Qᵀ (V̂ᵀŴ) coefᵀ
                Ut = coef_u @ Ut + coef[:, kk:] @ Vt[:j]
        history.append(sys_.check(x, r))
    if Ut is not None:
        space.U, space.C = Ut.T.copy(), Ct.T.copy()
    result = sys_.result(x, cycles, {"cycles": cycles, "recycled": recycled})
    if raise_on_fail:
        result.raise_if_not_converged()
    return result


def gmres_arnoldi(
    A: object,
    b: object,
    *,
    x0: object = None,
    M: object = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    m: int = 40,
    maxiter: int | None = None,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve A x = b by restarted GMRES(m) on numpy: GCRO-DR's own Arnoldi process, without deflation.

    The fair baseline for `gcrodr`: the same classical Gram–Schmidt with selective
    reorthogonalisation, the same matrix-vector product, preconditioning and stopping test
    (Givens estimate inside a cycle, the true residual at its end), so a comparison measures the
    method and not the implementation. Arguments as for `gcrodr` (``m`` is the restart length).

    Returns:
        `SolveResult` (1 system); iterations count every product with A; ``info["cycles"]``.
    """
    sys_ = _System(A, b, x0, M, rtol, atol, maxiter, "gmres_arnoldi")
    check_int("m", m, 1)
    x, r, cycles = sys_.x, sys_.r, 0
    while sys_.history[-1] > sys_.tol and sys_.count[0] < sys_.maxiter:
        cycles += 1
        steps = min(m, sys_.maxiter - sys_.count[0], sys_.n)
        x, r, *_ = _gmres_cycle(sys_.apply_AM, sys_.to_x, x, r, float(np.linalg.norm(r)), steps, sys_.tol)
        sys_.history.append(sys_.check(x, r))
    result = sys_.result(x, cycles, {"cycles": cycles})
    if raise_on_fail:
        result.raise_if_not_converged()
    return result
