"""physim.operators.node: neural ODEs with solver-aware local regularisation.

- `NeuralODE`: dy/dt = f_θ(t, y) solved by torchdiffeq's adaptive Dopri5 (optionally
  with the adjoint), counting function evaluations and recording accepted steps.
- ``NeuralODE.regularization``: the adaptive solver's local error estimate and
  stiffness indicator at randomly sampled steps (Pal et al. 2021, 2023).
- `step_heuristics`: those two quantities for one step, differentiable.
- `spiral_data`: the classic cubic-spiral trajectory for tests and benchmarks.
"""

from physim.operators.node.heuristics import StepHeuristics, step_heuristics
from physim.operators.node.model import LocalRegularization, NeuralODE, ODEFunc, spiral_data

__all__ = ["LocalRegularization", "NeuralODE", "ODEFunc", "StepHeuristics", "spiral_data", "step_heuristics"]
