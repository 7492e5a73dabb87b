"""Linear operators on batches of torch vectors, and the checks every solver runs first.

Every solver in `physim.solvers` accepts the operator ``A`` (and a preconditioner ``M``) as:

- a dense torch tensor or numpy array of shape (n, n), shared by the whole batch, or (B, n, n),
  one matrix per system;
- a sparse matrix: a torch sparse COO/CSR tensor or any ``scipy.sparse`` matrix/array, (n, n);
- a ``scipy.sparse.linalg.LinearOperator`` (applied on the CPU);
- a callable ``A(X) -> Y`` mapping a batch of vectors X of shape (B, n) to A·X of shape (B, n)
  (row i of Y must depend on row i of X only). Wrap a single-vector function with
  ``torch.vmap(f)``.

`as_operator` turns any of these into a `LinearOperator` after checking shape, squareness and
finiteness, so bad input fails with one `ConfigError` naming the argument before any
iteration runs.

On the CPU a sparse matrix is applied through scipy (torch's CPU sparse kernels are tens of
times slower on this machine); on CUDA through torch's sparse CSR product (cuSPARSE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from physim.errors import ConfigError

__all__ = ["LinearOperator", "as_operator", "check_rhs", "is_sparse", "to_scipy_sparse", "to_torch_sparse"]


def is_sparse(A: object) -> bool:
    """True for a scipy.sparse matrix/array or a torch sparse tensor."""
    if isinstance(A, torch.Tensor):
        return A.layout != torch.strided
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(A)


def to_scipy_sparse(A: object):
    """Return `A` (torch sparse/dense, numpy, scipy sparse) as a scipy CSR matrix on the CPU."""
    import scipy.sparse as sp

    if sp.issparse(A):
        return sp.csr_matrix(A)
    if isinstance(A, torch.Tensor):
        if A.layout == torch.strided:
            return sp.csr_matrix(A.detach().cpu().numpy())
        csr = A.detach().cpu().to_sparse_csr()
        return sp.csr_matrix(
            (csr.values().numpy(), csr.col_indices().numpy(), csr.crow_indices().numpy()), shape=tuple(csr.shape)
        )
    return sp.csr_matrix(np.asarray(A))


def to_torch_sparse(A: object, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None):
    """Return `A` (scipy sparse or dense) as a torch sparse CSR tensor."""
    S = to_scipy_sparse(A)
    values = torch.from_numpy(S.data)
    return torch.sparse_csr_tensor(
        torch.from_numpy(S.indptr.astype(np.int64)),
        torch.from_numpy(S.indices.astype(np.int64)),
        values.to(dtype or values.dtype),
        size=S.shape,
        device=device,
    )


def _shape_str(x: object) -> str:
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__} of shape {tuple(shape)}" if shape is not None else type(x).__name__


@dataclass
class LinearOperator:
    """A linear map applied to a batch of vectors: ``op(X)`` with X of shape (B, n).

    Attributes:
        n: Size of the vectors.
        dtype: Floating dtype of the vectors.
        device: Device of the vectors.
        kind: ``"dense"``, ``"batched_dense"``, ``"sparse"``, ``"scipy_operator"`` or ``"callable"``.
        matrix: The explicit matrix when there is one (torch dense (n, n) / (B, n, n), or scipy CSR
            for sparse input), else None; preconditioners such as Jacobi and ILU are built from it.
        batch: Number of matrices for ``"batched_dense"``, else None (shared by the batch).
        name: Argument name used in error messages (``"A"`` or ``"M"``).
    """

    n: int
    dtype: torch.dtype
    device: torch.device
    kind: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    matrix: object = None
    batch: int | None = None
    name: str = "A"
    _checked: bool = False

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.apply(X)
        if not self._checked:
            # A user callable is checked on its first product: right type, shape, finite values.
            if not isinstance(Y, torch.Tensor) or Y.shape != X.shape:
                raise ConfigError(
                    self.name, f"callable returning {_shape_str(Y)} for input of shape {tuple(X.shape)}",
                    "a linear map returning a tensor of the input's shape (B, n)",
                )
            if not bool(torch.isfinite(Y).all()):
                raise ConfigError(self.name, "callable returning non-finite values (NaN or inf)", "a finite linear map")
            self._checked = True
        return Y

    def diagonal(self) -> torch.Tensor:
        """Diagonal of the explicit matrix, shape (n,) or (B, n); error for a matrix-free operator."""
        if self.kind == "dense":
            return torch.diagonal(self.matrix)
        if self.kind == "batched_dense":
            return torch.diagonal(self.matrix, dim1=-2, dim2=-1)
        if self.kind == "sparse":
            return torch.as_tensor(self.matrix.diagonal(), dtype=self.dtype, device=self.device)
        raise ConfigError(self.name, f"a {self.kind} operator",
                          "an explicit matrix (dense or sparse) to take a diagonal of")

    def symmetry_error(self) -> float | None:
        """‖A − Aᵀ‖_F / ‖A‖_F for an explicit matrix, None for a matrix-free operator."""
        if self.kind in ("dense", "batched_dense"):
            M = self.matrix
            return float(torch.linalg.norm(M - M.transpose(-1, -2)) / torch.linalg.norm(M).clamp_min(1e-300))
        if self.kind == "sparse":
            S = self.matrix
            diff = abs(S - S.T)
            return float(np.sqrt((diff.multiply(diff)).sum()) / max(np.sqrt((S.multiply(S)).sum()), 1e-300))
        return None


def check_rhs(b: object, name: str = "b") -> torch.Tensor:
    """Return `b` as a floating torch tensor of shape (n,) or (B, n), finite; else `ConfigError`."""
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b)
    if not isinstance(b, torch.Tensor):
        raise ConfigError(name, _shape_str(b), "a torch tensor or numpy array of shape (n,) or (B, n)")
    if b.ndim not in (1, 2) or b.shape[-1] == 0:
        raise ConfigError(name, f"tensor of shape {tuple(b.shape)}", "shape (n,) or (B, n) with n > 0")
    if not b.is_floating_point():
        raise ConfigError(name, f"tensor of dtype {b.dtype}", "a floating-point tensor (float32 or float64)")
    if not bool(torch.isfinite(b).all()):
        bad = int((~torch.isfinite(b)).sum())
        raise ConfigError(name, f"tensor with {bad} non-finite entries (NaN or inf)", "finite entries")
    return b


def as_operator(
    A: object,
    *,
    n: int,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    name: str = "A",
) -> LinearOperator:
    """Check `A` against a right-hand side of shape (batch, n) and wrap it as a `LinearOperator`.

    Args:
        A: Dense/sparse matrix, scipy LinearOperator or callable (see the module docstring).
        n: Length of the vectors it must act on.
        batch: Number of systems B in the batch.
        dtype: Floating dtype of the vectors; explicit matrices are cast to it.
        device: Device of the vectors; explicit matrices are moved to it.
        name: Argument name for error messages.

    Raises:
        ConfigError: non-square or wrongly sized matrix, batch mismatch, NaN/inf entries, or an
            object that is not an operator.
    """
    expected = f"a square operator of size {n} (shape ({n}, {n}) or ({batch}, {n}, {n})) to match b"
    if isinstance(A, LinearOperator):
        if A.n != n or (A.batch is not None and A.batch != batch):
            raise ConfigError(name, f"operator of size {A.n}", expected)
        return A
    if isinstance(A, np.ndarray):
        A = torch.from_numpy(A)
    if isinstance(A, torch.Tensor) and A.layout == torch.strided:
        if A.ndim not in (2, 3) or A.shape[-1] != A.shape[-2]:
            raise ConfigError(name, f"tensor of shape {tuple(A.shape)}", expected)
        if A.shape[-1] != n:
            raise ConfigError(name, f"tensor of shape {tuple(A.shape)}", expected)
        if A.ndim == 3 and A.shape[0] != batch:
            raise ConfigError(name, f"tensor of shape {tuple(A.shape)}", f"a batch of {batch} matrices to match b")
        if not A.is_floating_point():
            A = A.to(dtype)
        if not bool(torch.isfinite(A).all()):
            bad = int((~torch.isfinite(A)).sum())
            raise ConfigError(name, f"matrix with {bad} non-finite entries (NaN or inf)", "finite entries")
        mat = A.detach().to(device=device, dtype=dtype)
        if mat.ndim == 2:
            return LinearOperator(n, dtype, device, "dense", lambda X: X @ mat.T, matrix=mat, name=name, _checked=True)
        return LinearOperator(n, dtype, device, "batched_dense", lambda X: torch.bmm(mat, X.unsqueeze(-1)).squeeze(-1),
                              matrix=mat, batch=batch, name=name, _checked=True)
    if is_sparse(A):
        shape = tuple(A.shape)
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] != n:
            raise ConfigError(name, f"sparse matrix of shape {shape}", expected)
        S = to_scipy_sparse(A)
        if not bool(np.isfinite(S.data).all()):
            bad = int((~np.isfinite(S.data)).sum())
            raise ConfigError(name, f"sparse matrix with {bad} non-finite entries (NaN or inf)", "finite entries")
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        S = S.astype(np_dtype)
        if device.type == "cpu":

            def apply_cpu(X: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(np.ascontiguousarray((S @ X.detach().numpy().T).T))

            return LinearOperator(n, dtype, device, "sparse", apply_cpu, matrix=S, name=name, _checked=True)
        T = to_torch_sparse(S, dtype=dtype, device=device)
        return LinearOperator(n, dtype, device, "sparse", lambda X: (T @ X.T).T, matrix=S, name=name, _checked=True)
    try:
        import scipy.sparse.linalg as sla
    except ImportError:  # pragma: no cover
        sla = None
    if sla is not None and isinstance(A, sla.LinearOperator):
        if A.shape != (n, n):
            raise ConfigError(name, f"scipy LinearOperator of shape {A.shape}", expected)

        def apply_scipy(X: torch.Tensor) -> torch.Tensor:
            Y = np.asarray(A.matmat(X.detach().cpu().numpy().T)).T
            return torch.as_tensor(np.ascontiguousarray(Y), dtype=dtype, device=device)

        return LinearOperator(n, dtype, device, "scipy_operator", apply_scipy, name=name)
    if callable(A):
        return LinearOperator(n, dtype, device, "callable", A, name=name)
    raise ConfigError(name, _shape_str(A), "a matrix (dense or sparse), a scipy LinearOperator or a callable X -> A X")
