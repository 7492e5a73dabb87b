"""`optimize`: one entry point for every trajectory-optimisation method.

    result = optimize(problem, init_actions, method="hybrid", budget=200, seed=0)
    result.best_actions, result.best_loss, result.history, result.wall_time

The budget counts simulator calls: a forward call over the full horizon costs 1, a
gradient call costs its *measured* cost relative to a forward call (`measure_grad_cost`,
or ``grad_cost=`` to fix it, e.g. to repeat a run exactly), so methods with and without
gradients compare at equal compute. Every method starts by evaluating the initial
actions (one forward call, charged).
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable

import torch

from physim.config import check_choice, check_int
from physim.errors import ConfigError
from physim.optim.trajectory.evaluator import BudgetExhausted, CallLog, Evaluator
from physim.optim.trajectory.problem import measure_grad_cost
from physim.optim.trajectory.result import Result

__all__ = ["METHODS", "default_config", "optimize"]

# name -> (runner "module:function", config "module:Class", needs gradients)
METHODS: dict[str, tuple[str, str, bool]] = {
    "gradient": ("physim.optim.trajectory.gradient:run_gradient",
                 "physim.optim.trajectory.gradient:GradientConfig", True),
    "cem": ("physim.optim.trajectory.cem:run_cem", "physim.optim.trajectory.cem:CEMConfig", False),
    "cmaes": ("physim.optim.trajectory.cma_es:run_cmaes", "physim.optim.trajectory.cma_es:CMAESConfig", False),
    "hybrid": ("physim.optim.trajectory.hybrid:run_hybrid", "physim.optim.trajectory.hybrid:HybridConfig", True),
    "cbo": ("physim.optim.trajectory.cbo:run_cbo", "physim.optim.trajectory.cbo:CBOMethodConfig", False),
    "zo": ("physim.optim.trajectory.zo:run_zo", "physim.optim.trajectory.zo:ZOConfig", False),
}


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def config_class(method: str) -> type:
    """The config dataclass of `method`."""
    check_choice("method", method, METHODS)
    return _load(METHODS[method][1])


def default_config(method: str):
    """The default settings of `method`."""
    return config_class(method)()


def optimize(
    problem,
    init_actions: torch.Tensor,
    method: str = "hybrid",
    budget: float = 200,
    seed: int = 0,
    *,
    config=None,
    grad_cost: float | None = None,
    call_log: CallLog | None = None,
    on_call: Callable | None = None,
) -> Result:
    """Minimise ``problem.loss`` over action tensors, starting at `init_actions`.

    Args:
        problem: A `Problem` (see `from_torch_loss`, `from_black_box`).
        init_actions: Initial actions, shape ``problem.action_shape``.
        method: ``"gradient"``, ``"cem"``, ``"cmaes"``, ``"hybrid"``, ``"cbo"`` or ``"zo"``.
        budget: Simulator calls (forward calls over the full horizon) the method may use, ≥ 1.
        seed: Seed of the method's random numbers; same seed, same problem, same
            ``grad_cost`` → the same calls and the same result.
        config: The method's settings (`GradientConfig`, `CEMConfig`, `CMAESConfig`,
            `HybridConfig`, ...); None for its defaults.
        grad_cost: Charge of one gradient call in forward calls; None measures it
            (`measure_grad_cost`, calls not charged) when the method uses gradients.
        call_log: Log to resume from and append to (see `CallLog`).
        on_call: Callback ``on_call(evaluator, record)`` after every call (progress bars).

    Returns:
        A `Result`.

    Raises:
        ConfigError: Unknown method, a config of another method, a budget below 1, a
            negative seed, actions of the wrong shape, or a gradient method on a problem
            that is not differentiable; all before any simulator call.
    """
    check_choice("method", method, METHODS)
    runner_ref, _, needs_grad = METHODS[method]
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 1:
        raise ConfigError("budget", budget, "a number of simulator calls >= 1")
    check_int("seed", seed, 0)
    cfg_cls = config_class(method)
    if config is None:
        config = cfg_cls()
    elif not isinstance(config, cfg_cls):
        raise ConfigError("config", type(config).__name__, f"a {cfg_cls.__name__} for method {method!r}")
    init = problem.check_actions(init_actions)
    init = problem.project(init)
    if needs_grad and not problem.differentiable:
        raise ConfigError("method", method, "cem, cmaes, cbo or zo: the problem is not differentiable")
    runner = _load(runner_ref)
    if grad_cost is not None:
        if isinstance(grad_cost, bool) or not isinstance(grad_cost, (int, float)) or not grad_cost > 0:
            raise ConfigError("grad_cost", grad_cost, "a positive number of forward calls")
        grad_cost = float(grad_cost)
    elif needs_grad:
        logged = call_log.header.get("grad_cost") if call_log is not None else None
        grad_cost = float(logged) if logged is not None else measure_grad_cost(problem, init)
    if call_log is not None:
        call_log.header["grad_cost"] = grad_cost

    logged = 0 if call_log is None else len(call_log.calls)
    ev = Evaluator(problem, budget, grad_cost if needs_grad else None, call_log=call_log, on_call=on_call)
    info: dict = {}
    t0 = time.perf_counter()
    ev.phase = "init"
    try:
        initial = ev.loss(init)
        runner(ev, init, config, seed, info)
    except BudgetExhausted:
        pass
    finally:
        if call_log is not None:
            call_log.save()
    if ev.history and ev.history[0].phase == "init":
        initial = ev.history[0].loss
    replayed = min(logged, len(ev.history))
    wall = time.perf_counter() - t0
    if replayed:
        # A resumed run reports the time its replayed calls took when they were first made.
        info["replayed_calls"] = replayed
        wall += sum(r.seconds for r in ev.history[:replayed])
    best_actions = ev.best_actions if ev.best_actions is not None else init
    return Result(
        method=method, best_actions=best_actions, best_loss=ev.best_loss, initial_loss=initial,
        history=ev.history, wall_time=wall, budget=float(budget), cost_used=ev.cost_used,
        grad_cost=grad_cost if needs_grad else None, seed=seed, n_forward=ev.n_forward, n_gradient=ev.n_gradient,
        info=info,
    )
