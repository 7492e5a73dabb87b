"""physim.envs: gymnasium environments, registered as ``physim/<Task>-v0`` on import.

Installed from the top-level folder ``envs/`` as ``physim.envs``. Environments see the
simulators only through torch: this package never imports Warp or Taichi (the simulators
load their backend when they first step).

Example::

    import gymnasium as gym
    import physim.envs  # registers the ids

    env = gym.make("physim/Pouring-v0", quality="cpu", render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    loss = env.unwrapped.rollout_loss(actions)   # differentiable w.r.t. actions (T, action_dim)

See docs/envs.md.
"""

from physim.envs.fluid.registry import TASKS, env_id, register_all

__all__ = ["TASKS", "env_id", "ids"]

register_all()


def ids() -> list[str]:
    """The registered ids of physim's environments."""
    return [env_id(t) for t in TASKS]
