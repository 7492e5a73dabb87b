"""The task registry behind ``physim trajopt TASK``: task ids → problems, tool paths and videos.

Built-in ids are the chain tasks (`chain_tasks`); any other id is looked up in
gymnasium's registry (after ``import physim.envs``), so the fluid, shell and tactile
suites plug in through the interface their issue defines: ``env.unwrapped.rollout_loss(
actions)`` (differentiable, from the reset state over the whole horizon), a Box action
space, ``max_episode_steps``, and ``render_mode="rgb_array"`` for the video. Such a task
is exportable when its env also offers ``tool_path(actions) -> (times, positions)`` and
``tool_axis_names``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from physim.errors import ConfigError

__all__ = ["CHAIN_TASK_IDS", "Task", "list_tasks", "make_task"]

#: Built-in tasks: id → chain task name.
CHAIN_TASK_IDS = {
    "physim/ChainTrack-v0": "track",
    "physim/ChainSwingUp-v0": "swingup",
    "physim/ChainThrow-v0": "throw",
}


@dataclass
class Task:
    """Everything the trajopt command needs about one task.

    Attributes:
        task_id: The id, e.g. ``"physim/ChainSwingUp-v0"``.
        problem: The `Problem` to optimise.
        init_actions: Starting actions.
        description: One line for listings and metadata.
        frames: ``frames(actions) -> list of RGB arrays`` for the video, or None.
        tool_path: ``tool_path(actions) -> (times [s] (k,), positions (k, axes))`` for the export, or None.
        actions_from_tool: Inverse of `tool_path` (knot positions → actions), for replays, or None.
        axis_names: Names of the tool axes.
        units: Units of the tool axes.
        frame: Description of the task frame.
        control_dt: Duration of one control step [s], or None.
        fps: Frames per second of the video.
    """

    task_id: str
    problem: object
    init_actions: torch.Tensor
    description: str = ""
    frames: Callable | None = None
    tool_path: Callable | None = None
    actions_from_tool: Callable | None = None
    axis_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    frame: str = ""
    control_dt: float | None = None
    fps: float = 20.0
    extra: dict = field(default_factory=dict)


def list_tasks() -> list[str]:
    """Ids of the built-in tasks plus the ``physim/*`` ids of gymnasium's registry (if physim.envs loads)."""
    ids = set(CHAIN_TASK_IDS)
    try:
        import gymnasium as gym

        import physim.envs  # noqa: F401  (registers the suites that exist)

        ids |= {k for k in gym.registry if k.startswith("physim/")}
    except Exception:  # an env suite that fails to import must not hide the built-in tasks
        pass
    return sorted(ids)


def _chain_task(task_id: str, steps: int | None) -> Task:
    from physim.optim.trajectory.chain_tasks import ChainTask, ChainTaskConfig

    kwargs = {"task": CHAIN_TASK_IDS[task_id]}
    if steps is not None:
        kwargs["steps"] = steps
    ct = ChainTask(ChainTaskConfig(**kwargs))
    return Task(
        task_id=task_id, problem=ct.problem, init_actions=ct.init_actions,
        description=f"Warp mass-spring chain, {ct.cfg.particles} particles, {ct.cfg.steps} steps of "
                    f"{ct.control_dt * 1e3:g} ms: {ct.cfg.task}",
        frames=ct.frames, tool_path=ct.tool_path, actions_from_tool=ct.actions_from_tool,
        axis_names=ct.axis_names, units=ct.units, frame=ct.frame, control_dt=ct.control_dt,
        fps=min(30.0, 1.0 / ct.control_dt), extra={"chain": ct},
    )


def _gym_task(task_id: str, steps: int | None) -> Task:
    import gymnasium as gym

    from physim.optim.trajectory.problem import TorchLossProblem

    env = gym.make(task_id, render_mode="rgb_array")
    u = env.unwrapped
    if not hasattr(u, "rollout_loss"):
        raise ConfigError("task", task_id, "an environment whose unwrapped env has rollout_loss(actions)")
    space = env.action_space
    horizon = steps or (env.spec.max_episode_steps if env.spec is not None else None)
    if horizon is None:
        raise ConfigError("steps", None, f"the horizon of {task_id} (it declares no max_episode_steps)")
    shape = (int(horizon), *space.shape)
    low = torch.as_tensor(space.low, dtype=torch.float64).expand(shape)
    high = torch.as_tensor(space.high, dtype=torch.float64).expand(shape)
    problem = TorchLossProblem(lambda a: u.rollout_loss(a), shape, lower=low, upper=high, name=task_id)

    def frames(actions: torch.Tensor) -> list:
        env.reset(seed=0)
        out = [env.render()]
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a.to(torch.float32).numpy())
            out.append(env.render())
            if terminated or truncated:
                break
        return [f for f in out if f is not None]

    tool_path = getattr(u, "tool_path", None)
    return Task(
        task_id=task_id, problem=problem, init_actions=torch.zeros(shape, dtype=torch.float64),
        description=f"gymnasium env {task_id}", frames=frames, tool_path=tool_path,
        actions_from_tool=getattr(u, "actions_from_tool", None),
        axis_names=tuple(getattr(u, "tool_axis_names", ())), units=tuple(getattr(u, "tool_units", ())),
        frame=str(getattr(u, "tool_frame", "")), control_dt=getattr(u, "control_dt", None),
        fps=float(env.metadata.get("render_fps", 20)), extra={"env": env},
    )


def make_task(task_id: str, *, steps: int | None = None) -> Task:
    """Build a task by id; see the module docstring.

    Args:
        task_id: A built-in id or a registered gymnasium id.
        steps: Override of the horizon (control steps); None: the task's own.

    Raises:
        ConfigError: An unknown id (the message lists the known ones).
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
        raise ConfigError("steps", steps, "None or an integer >= 2")
    if task_id in CHAIN_TASK_IDS:
        return _chain_task(task_id, steps)
    known = list_tasks()
    if task_id not in known:
        try:
            import gymnasium as gym

            gym.spec(task_id)
        except Exception:
            raise ConfigError("task", task_id, "one of " + ", ".join(known)) from None
    return _gym_task(task_id, steps)
