"""FluidLab's fluid-manipulation tasks as differentiable gymnasium environments (see docs/envs.md)."""

from physim.envs.fluid.quality import QUALITIES, Quality
from physim.envs.fluid.registry import HORIZONS, TASKS, env_id

__all__ = ["HORIZONS", "QUALITIES", "TASKS", "FluidEnv", "Quality", "env_id"]


def __getattr__(name: str):
    if name == "FluidEnv":
        from physim.envs.fluid.env import FluidEnv

        return FluidEnv
    raise AttributeError(f"module 'physim.envs.fluid' has no attribute {name!r}")
