"""Linear solvers, Krylov recycling, learned and bandit-tuned solvers, implicit differentiation.

Everything here works on torch tensors (CPU or CUDA) and batches of systems::

    from physim import solvers
    res = solvers.cg(A, b, M="ichol", rtol=1e-8)          # b: (n,) or (B, n)
    res.x, res.converged, res.iterations, res.residuals  # never a silent non-converged answer

See docs/solvers.md for the full guide.
"""

from __future__ import annotations

from physim.solvers.implicit import custom_fixed_point, custom_root, root_vjp
from physim.solvers.krylov_gmres import bicgstab, gmres
from physim.solvers.krylov_symmetric import cg, minres
from physim.solvers.lm import LMResult, levenberg_marquardt
from physim.solvers.operators import LinearOperator, as_operator, to_scipy_sparse, to_torch_sparse
from physim.solvers.preconditioners import Preconditioner, amg, ichol, ilu, jacobi
from physim.solvers.result import NotConverged, SolveResult

__all__ = [
    "LMResult",
    "LinearOperator",
    "NotConverged",
    "Preconditioner",
    "SolveResult",
    "amg",
    "as_operator",
    "bicgstab",
    "cg",
    "custom_fixed_point",
    "custom_root",
    "gmres",
    "ichol",
    "ilu",
    "jacobi",
    "levenberg_marquardt",
    "minres",
    "root_vjp",
    "to_scipy_sparse",
    "to_torch_sparse",
]
