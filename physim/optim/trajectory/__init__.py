"""Trajectory optimisation and system identification over any physim simulator.

The optimisers see only a `Problem`: a loss over an action tensor, differentiable or not.

    from physim.optim.trajectory import optimize, from_torch_loss
    problem = from_torch_loss(env.unwrapped.rollout_loss, action_shape=(T, 3), lower=-1, upper=1)
    result = optimize(problem, torch.zeros(T, 3), method="hybrid", budget=200, seed=0)

Methods: ``gradient`` (Adam or any registered optimizer, with FluidLab's expanding loss
horizon and loss annealing), ``cem``, ``cmaes`` (the `cmaes` package), ``hybrid``
(sampling then gradient refinement, ThinShellLab's scheme), ``cbo`` and ``zo`` (through
`physim.optim`'s consensus and zeroth-order implementations). System identification:
`identify`. See docs/trajopt.md.
"""

from __future__ import annotations

from physim.optim.trajectory.api import METHODS, default_config, optimize
from physim.optim.trajectory.cem import CEMConfig
from physim.optim.trajectory.cma_es import CMAESConfig
from physim.optim.trajectory.evaluator import CallLog, CallRecord
from physim.optim.trajectory.gradient import GradientConfig
from physim.optim.trajectory.hybrid import HybridConfig
from physim.optim.trajectory.problem import (
    BlackBoxProblem,
    Problem,
    TorchLossProblem,
    from_black_box,
    from_torch_loss,
    measure_grad_cost,
)
from physim.optim.trajectory.result import Result
from physim.optim.trajectory.sysid import IdentifyResult, Param, identify

__all__ = [
    "METHODS",
    "BlackBoxProblem",
    "CEMConfig",
    "CMAESConfig",
    "CallLog",
    "CallRecord",
    "GradientConfig",
    "HybridConfig",
    "IdentifyResult",
    "Param",
    "Problem",
    "Result",
    "TorchLossProblem",
    "default_config",
    "from_black_box",
    "from_torch_loss",
    "identify",
    "measure_grad_cost",
    "optimize",
]
