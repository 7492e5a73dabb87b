"""What every physim linear solver returns, and the error it raises on request.

A solver never hands back a silent non-converged answer: `SolveResult.converged` says
which systems met the tolerance, `SolveResult.residuals` shows how far each one got, and
``raise_on_fail=True`` (or `SolveResult.raise_if_not_converged`) turns a miss into
`NotConverged`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from physim.errors import PhysimError

__all__ = ["NotConverged", "SolveResult"]


class NotConverged(PhysimError, RuntimeError):
    """An iterative solver stopped at `maxiter` (or broke down) above its tolerance.

    Attributes:
        method: Name of the solver (``"cg"``, ``"gmres"`` …).
        failed: Number of systems of the batch that did not converge.
        batch: Number of systems in the batch.
        residual: Largest final residual norm ‖b − A x‖ among the failed systems.
        target: The tolerance ``max(rtol·‖b‖, atol)`` of that system.
        iterations: Iterations spent on that system.
    """

    def __init__(self, method: str, failed: int, batch: int, residual: float, target: float, iterations: int):
        self.method = method
        self.failed = failed
        self.batch = batch
        self.residual = residual
        self.target = target
        self.iterations = iterations
        super().__init__(
            f"{method} did not converge for {failed} of {batch} system(s): residual {residual:.3e} > "
            f"tolerance {target:.3e} after {iterations} iterations (raise maxiter, loosen rtol/atol, "
            "or use a preconditioner)"
        )


@dataclass(frozen=True)
class SolveResult:
    """Solution of a (batched) linear solve and how it was reached.

    Shapes follow the right-hand side: for ``b`` of shape (n,) every per-system field is a
    0-d tensor and `residuals` has shape (K + 1,); for ``b`` of shape (B, n) they have a
    leading batch dimension B.

    Attributes:
        x: Solution, same shape, dtype and device as ``b``.
        converged: Whether ‖b − A x‖ ≤ max(rtol·‖b‖, atol), checked with a freshly computed
            residual (not only the solver's recurrence), bool, shape (B,).
        iterations: Iterations spent per system (matrix-vector products for GMRES, i.e. inner
            Arnoldi steps; BiCGStab counts one iteration per two products), int64, shape (B,).
        residuals: Residual norm ‖b − A x_k‖ per iteration k = 0 … K, where K is the largest
            iteration count of the batch; a system that stopped earlier repeats its last value.
            Entry 0 is ‖b − A x0‖ and the last entry is the recomputed final residual, shape (B, K + 1).
        tolerance: The absolute target max(rtol·‖b‖, atol) per system, shape (B,).
        method: Name of the solver that produced it.
        info: Extra, solver-specific counters (e.g. ``"matvecs"``, ``"restarts"``).
    """

    x: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    residuals: torch.Tensor
    tolerance: torch.Tensor
    method: str
    info: dict = field(default_factory=dict)

    @property
    def residual_norm(self) -> torch.Tensor:
        """Final residual norm ‖b − A x‖ per system, shape (B,) or ()."""
        return self.residuals[..., -1]

    @property
    def all_converged(self) -> bool:
        """True when every system of the batch converged."""
        return bool(self.converged.all())

    def raise_if_not_converged(self) -> SolveResult:
        """Raise `NotConverged` for the worst failed system, else return self (for chaining)."""
        conv = self.converged.reshape(-1)
        if bool(conv.all()):
            return self
        res = self.residual_norm.reshape(-1)
        tol = self.tolerance.reshape(-1)
        its = self.iterations.reshape(-1)
        ratio = torch.where(conv, torch.zeros_like(res), res / tol.clamp_min(torch.finfo(res.dtype).tiny))
        worst = int(torch.argmax(ratio))
        raise NotConverged(
            self.method, int((~conv).sum()), conv.numel(), float(res[worst]), float(tol[worst]), int(its[worst])
        )
