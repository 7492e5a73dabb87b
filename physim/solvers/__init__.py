"""Linear solvers, Krylov recycling, learned and bandit-tuned solvers, implicit differentiation.

Everything here works on torch tensors (CPU or CUDA) and batches of systems::

    from physim import solvers
    res = solvers.cg(A, b, M="ichol", rtol=1e-8)          # b: (n,) or (B, n)
    res.x, res.converged, res.iterations, res.residuals  # never a silent non-converged answer

Names load lazily (``import physim.solvers`` imports neither torch nor scipy until a solver is
used), so the ``physim data ...`` commands start fast. See docs/solvers.md for the guide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> submodule defining it
_EXPORTS = {
    "SolveResult": "result",
    "NotConverged": "result",
    "LinearOperator": "operators",
    "as_operator": "operators",
    "to_scipy_sparse": "operators",
    "to_torch_sparse": "operators",
    "Preconditioner": "preconditioners",
    "jacobi": "preconditioners",
    "ilu": "preconditioners",
    "ichol": "preconditioners",
    "amg": "preconditioners",
    "cg": "krylov_symmetric",
    "minres": "krylov_symmetric",
    "gmres": "krylov_gmres",
    "bicgstab": "krylov_gmres",
    "scipy_solve": "scipy_adapter",
    "as_scipy_operator": "scipy_adapter",
    "warp_solve": "warp_adapter",
    "to_warp_bsr": "warp_adapter",
    "custom_root": "implicit",
    "custom_fixed_point": "implicit",
    "root_vjp": "implicit",
    "LMResult": "lm",
    "levenberg_marquardt": "lm",
    "RecycleSpace": "recycling",
    "gcrodr": "recycling",
    "gmres_arnoldi": "recycling",
    "skr_features": "skr",
    "sort_systems": "skr",
    "solve_sequence": "skr",
    "SequenceResult": "skr",
    "sor": "relaxation",
    "TsallisINF": "bandits",
    "TsallisINFCB": "bandits",
    "omega_grid": "bandits",
    "run_sor_sequence": "bandits",
    "DCDMNet": "dcdm",
    "DCDMTrainConfig": "dcdm",
    "train_dcdm": "dcdm",
    "dcdm_solve": "dcdm",
}

__all__ = [
    "DCDMNet",
    "DCDMTrainConfig",
    "LMResult",
    "LinearOperator",
    "NotConverged",
    "Preconditioner",
    "RecycleSpace",
    "SequenceResult",
    "SolveResult",
    "TsallisINF",
    "TsallisINFCB",
    "amg",
    "as_operator",
    "as_scipy_operator",
    "bicgstab",
    "cg",
    "custom_fixed_point",
    "custom_root",
    "dcdm_solve",
    "gcrodr",
    "gmres",
    "gmres_arnoldi",
    "ichol",
    "ilu",
    "jacobi",
    "levenberg_marquardt",
    "minres",
    "omega_grid",
    "root_vjp",
    "run_sor_sequence",
    "scipy_solve",
    "skr_features",
    "solve_sequence",
    "sor",
    "sort_systems",
    "to_scipy_sparse",
    "to_torch_sparse",
    "to_warp_bsr",
    "train_dcdm",
    "warp_solve",
]

if TYPE_CHECKING:  # pragma: no cover
    from physim.solvers.bandits import TsallisINF, TsallisINFCB, omega_grid, run_sor_sequence
    from physim.solvers.dcdm import DCDMNet, DCDMTrainConfig, dcdm_solve, train_dcdm
    from physim.solvers.implicit import custom_fixed_point, custom_root, root_vjp
    from physim.solvers.krylov_gmres import bicgstab, gmres
    from physim.solvers.krylov_symmetric import cg, minres
    from physim.solvers.lm import LMResult, levenberg_marquardt
    from physim.solvers.operators import LinearOperator, as_operator, to_scipy_sparse, to_torch_sparse
    from physim.solvers.preconditioners import Preconditioner, amg, ichol, ilu, jacobi
    from physim.solvers.recycling import RecycleSpace, gcrodr, gmres_arnoldi
    from physim.solvers.relaxation import sor
    from physim.solvers.result import NotConverged, SolveResult
    from physim.solvers.scipy_adapter import as_scipy_operator, scipy_solve
    from physim.solvers.skr import SequenceResult, skr_features, solve_sequence, sort_systems
    from physim.solvers.warp_adapter import to_warp_bsr, warp_solve


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'physim.solvers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"physim.solvers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
