"""The fluid tasks by name: where each is defined, and their registration with gymnasium.

Importing this module imports no task module and no simulator: registration needs only the
names and horizons listed here (checked against the task modules by the test suite).
"""

from __future__ import annotations

import importlib

from physim.errors import ConfigError

__all__ = ["ENTRY_POINT", "HORIZONS", "TASKS", "build_spec", "env_id", "register_all"]

#: task name → "module:function" building its `TaskSpec` from a `Quality`.
TASKS: dict[str, str] = {
    "LatteArt": "physim.envs.fluid.tasks.cup:latte_art",
    "LatteArtStir": "physim.envs.fluid.tasks.cup:latte_art_stir",
    "Mixing": "physim.envs.fluid.tasks.cup:mixing",
    "IceCreamStatic": "physim.envs.fluid.tasks.ice_cream:ice_cream_static",
    "IceCreamDynamic": "physim.envs.fluid.tasks.ice_cream:ice_cream_dynamic",
    "GatheringEasy": "physim.envs.fluid.tasks.tank:gathering_easy",
    "GatheringO": "physim.envs.fluid.tasks.tank:gathering_o",
    "Scooping": "physim.envs.fluid.tasks.tank:scooping",
    "Pouring": "physim.envs.fluid.tasks.pouring:pouring",
    "Transporting": "physim.envs.fluid.tasks.jet:transporting",
    "Stabilizing": "physim.envs.fluid.tasks.jet:stabilizing",
    "Circulation": "physim.envs.fluid.tasks.circulation:circulation",
}

#: Episode lengths in control steps: FluidLab's ``horizon_action`` (the gym horizon of its registered envs).
HORIZONS: dict[str, int] = {
    "LatteArt": 250,
    "LatteArtStir": 500,
    "Mixing": 2000,
    "IceCreamStatic": 500,
    "IceCreamDynamic": 900,
    "GatheringEasy": 840,
    "GatheringO": 3600,
    "Scooping": 300,
    "Pouring": 1000,
    "Transporting": 1000,
    "Stabilizing": 2000,
    "Circulation": 1000,
}

ENTRY_POINT = "physim.envs.fluid.env:FluidEnv"


def env_id(task: str) -> str:
    return f"physim/{task}-v0"


def build_spec(task: str, quality, horizon: int | None = None):
    """The `TaskSpec` (or gas task spec) of `task` at `quality`, optionally with a shorter horizon."""
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError("task", task, "one of " + ", ".join(TASKS))
    module, fn = TASKS[task].split(":")
    return getattr(importlib.import_module(module), fn)(quality, horizon=horizon)


def register_all() -> None:
    """Register ``physim/<Task>-v0`` for every task (idempotent)."""
    import gymnasium as gym

    for task, horizon in HORIZONS.items():
        if env_id(task) in gym.registry:
            continue
        gym.register(id=env_id(task), entry_point=ENTRY_POINT, kwargs={"task": task},
                     max_episode_steps=horizon, disable_env_checker=False)
