"""The task registry behind ``physim trajopt TASK``: task ids → problems, tool paths and videos.

Built-in ids are the chain tasks (`chain_tasks`); any other id is looked up in
gymnasium's registry (after ``import physim.envs``; a short name such as ``Pouring``
names ``physim/Pouring-v0``), so the fluid, shell and tactile
suites plug in through the interface their issue defines: ``env.unwrapped.rollout_loss(
actions)`` (differentiable, from the reset state over the whole horizon), a Box action
space, ``max_episode_steps``, and ``render_mode="rgb_array"`` for the video. Such a task
is exportable when its env also offers ``tool_path(actions) -> (times, positions)`` and
``tool_axis_names``. Fluid tasks are built with ``horizon=steps`` (and the
``quality`` preset when given), and their ``rollout_loss(actions, horizon=H)`` gives the
gradient methods FluidLab's expanding loss horizon.

`replay_export` closes the sim-to-real round trip: an exported file, read back, is turned
into actions again and replayed in the task it came from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from physim.errors import ConfigError

__all__ = ["CHAIN_TASK_IDS", "Task", "list_tasks", "make_task", "replay_export", "resolve_task_id"]

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


def _entry_accepts(task_id: str, name: str) -> bool:
    """Whether the registered env's constructor takes the keyword `name` (e.g. ``horizon``, ``quality``)."""
    import gymnasium as gym

    from physim.optim.trajectory.problem import _accepts

    entry = gym.spec(task_id).entry_point
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return False
    return callable(entry) and _accepts(entry, name)


def resolve_task_id(name: str) -> str:
    """The registered id of a task given by id or short name.

    ``"physim/Pouring-v0"``, ``"Pouring-v0"``, ``"Pouring"`` and ``"pouring"`` all name
    the fluid task ``physim/Pouring-v0``; likewise ``"ChainThrow"`` the chain task.

    Raises:
        ConfigError: No task matches (the message lists the known ids).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("task", name, "a task id such as physim/Pouring-v0 or a short name such as Pouring")
    if name in CHAIN_TASK_IDS:
        return name
    known = list_tasks()
    if name in known:
        return name
    short = name.removeprefix("physim/")
    candidates = {short.lower(), f"{short}-v0".lower()}
    matches = [k for k in known if k.removeprefix("physim/").lower() in candidates]
    if len(matches) == 1:
        return matches[0]
    try:  # an id registered by another package (gymnasium's registry is the authority)
        import gymnasium as gym

        gym.spec(name)
        return name
    except Exception:
        raise ConfigError("task", name, "one of " + ", ".join(known) + " (or a short name such as Pouring)") from None


def _gym_task(task_id: str, steps: int | None, env_kwargs: dict) -> Task:
    import gymnasium as gym

    from physim.optim.trajectory.problem import TorchLossProblem

    kwargs = dict(env_kwargs)
    if steps is not None:
        kwargs["max_episode_steps"] = steps
        # An env that knows its horizon (the fluid suite) builds only what `steps` needs: a
        # shape-matching task then records its goal over these steps, not its full episode.
        if _entry_accepts(task_id, "horizon"):
            kwargs.setdefault("horizon", steps)
    env = gym.make(task_id, render_mode="rgb_array", **kwargs)
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
    # Passed as is, so a `rollout_loss(actions, horizon=H)` (the fluid suite's) gives the
    # gradient method FluidLab's expanding loss horizon, each call charged H/T.
    problem = TorchLossProblem(u.rollout_loss, shape, lower=low, upper=high, name=task_id)

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
    quality = getattr(u, "quality", None)
    settings = {k: v for k, v in env_kwargs.items() if isinstance(v, (str, int, float, bool))}
    if isinstance(quality, str):
        settings.setdefault("quality", quality)
    return Task(
        task_id=task_id, problem=problem, init_actions=torch.zeros(shape, dtype=torch.float64),
        description=f"gymnasium env {task_id}, {shape[0]} steps"
                    + "".join(f", {k} {v}" for k, v in settings.items()),
        frames=frames, tool_path=tool_path,
        actions_from_tool=getattr(u, "actions_from_tool", None),
        axis_names=tuple(getattr(u, "tool_axis_names", ())), units=tuple(getattr(u, "tool_units", ())),
        frame=str(getattr(u, "tool_frame", "")), control_dt=getattr(u, "control_dt", None),
        fps=float(env.metadata.get("render_fps", 20)), extra={"env": env, "env_settings": settings},
    )


def make_task(task_id: str, *, steps: int | None = None, env_kwargs: dict | None = None) -> Task:
    """Build a task by id or short name; see the module docstring and `resolve_task_id`.

    Args:
        task_id: A built-in id, a registered gymnasium id, or a short name (``"Pouring"``).
        steps: Override of the horizon (control steps); None: the task's own.
        env_kwargs: Keyword arguments of ``gym.make`` for a gymnasium task (e.g. ``quality``
            for the fluid suite); not allowed for the chain tasks.

    Raises:
        ConfigError: An unknown id (the message lists the known ones), or `env_kwargs`
            for a chain task.
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
        raise ConfigError("steps", steps, "None or an integer >= 2")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ConfigError("env_kwargs", type(env_kwargs).__name__, "None or a dict of gym.make keyword arguments")
    task_id = resolve_task_id(task_id)
    if task_id in CHAIN_TASK_IDS:
        if env_kwargs:
            raise ConfigError("env_kwargs", sorted(env_kwargs), f"none: {task_id} is a built-in chain task")
        return _chain_task(task_id, steps)
    return _gym_task(task_id, steps, env_kwargs or {})


def replay_export(path) -> tuple[float, torch.Tensor]:
    """Replay an exported trajectory file in the simulator it was optimised in.

    Reads the file (`physim.io.load_trajectory`), recovers the tool positions at the
    control steps (`physim.io.export.knots_from_export`: undoes the retiming and the
    base-frame offset), turns them back into actions with the task's
    ``actions_from_tool``, and evaluates the task loss over the same horizon and env
    settings (``quality``) as the run, all read from the file's metadata.

    Returns:
        (task loss of the replay, the replayed actions of shape (T, action_dim)).

    Raises:
        FileFormatError: A malformed file, or metadata without the task.
        ConfigError: A task that cannot be rebuilt or that has no ``actions_from_tool``.
    """
    from physim.io import load_trajectory
    from physim.io.export import knots_from_export
    from physim.io.robots import FileFormatError

    traj = load_trajectory(path)
    meta = traj.metadata
    task_id = meta.get("task")
    if not isinstance(task_id, str):
        raise FileFormatError(path, "metadata has no task id (not exported from a physim trajopt run?)")
    settings = meta.get("env_settings") or {}
    if not isinstance(settings, dict):
        raise FileFormatError(path, f"metadata env_settings must be a mapping, got {type(settings).__name__}")
    _, knots = knots_from_export(traj)
    steps = int(knots.shape[0]) - 1
    task = make_task(task_id, steps=steps, env_kwargs=dict(settings) or None)
    if task.actions_from_tool is None:
        raise ConfigError("task", task_id, "a task whose env offers actions_from_tool (to replay an export)")
    actions = task.problem.project(task.actions_from_tool(torch.as_tensor(knots, dtype=torch.float64)))
    return task.problem.loss(actions), actions
