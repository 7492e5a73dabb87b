"""The ``physim trajopt`` command: optimise a task's actions and fill a run folder.

    physim trajopt physim/ChainSwingUp-v0 --method hybrid --budget 200 --out runs/swingup

The run folder gets:

- ``config.json``: the resolved settings (with the measured gradient cost) and the exact
  command that repeats the run call for call;
- ``calls.pt``: every simulator call so far; an interrupted run started again with the
  same command resumes from it (replaying the logged calls, then continuing live);
- ``result.json``: best loss, initial loss, calls, wall time, phases, history, best actions;
- ``tool_path.json``: the best actions as tool positions at the control steps (what
  ``physim export`` reads);
- ``loss.png``: best loss versus simulator calls; ``best.gif`` (or ``.mp4``): the best episode.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import tyro

from physim.config import check_choice, check_int
from physim.errors import ConfigError
from physim.io.atomic import atomic_path, atomic_write_text

__all__ = ["TrajoptConfig", "build_method_config", "cli_trajopt", "plot_loss", "run_trajopt"]

log = logging.getLogger(__name__)

_METHODS = ("gradient", "cem", "cmaes", "hybrid", "cbo", "zo")


@dataclass(frozen=True, kw_only=True)
class TrajoptConfig:
    """Optimise the actions of a task (a chain task or a physim gym env) and save a run folder."""

    task: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="TASK")]
    """Task id or short name: physim/ChainSwingUp-v0, physim/Pouring-v0 or Pouring, ... (`physim envs` lists them)."""
    method: str = "hybrid"
    """gradient, cem, cmaes, hybrid, cbo or zo."""
    budget: float = 200
    """Simulator calls (a gradient call counts its measured cost in forward calls)."""
    seed: int = 0
    """Seed of the method."""
    out: Path = Path("runs/trajopt")
    """Run folder."""
    steps: int | None = None
    """Horizon in control steps; default: the task's."""
    quality: str | None = None
    """Resolution preset of a fluid task: cpu or paper; default: the env's (cpu)."""
    grad_cost: float | None = None
    """Cost of a gradient call in forward calls; default: measured (and saved in config.json)."""
    lr: float | None = None
    """Learning rate of the gradient steps (gradient, hybrid, zo); default: the method's."""
    knots: int | None = 8
    """Knots per action component of the samplers' coarse action space (cem, cmaes, hybrid, cbo)."""
    population: int | None = None
    """Samples per generation of the samplers (particles for cbo); default: the method's."""
    video: bool = True
    """Write a video of the best episode (best.gif or best.mp4)."""
    video_format: str = "gif"
    """Video container: gif or mp4."""
    progress: bool = True
    """Show a progress bar (on a terminal)."""

    def __post_init__(self) -> None:
        check_choice("method", self.method, _METHODS)
        check_choice("video_format", self.video_format, ("gif", "mp4"))
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget) and self.budget >= 1):
            raise ConfigError("budget", self.budget, "a number of simulator calls >= 1")
        check_int("seed", self.seed, 0)
        if self.steps is not None:
            check_int("steps", self.steps, 2)
        if self.quality is not None:
            check_choice("quality", self.quality, ("cpu", "paper"))
        if self.grad_cost is not None and not (math.isfinite(self.grad_cost) and self.grad_cost > 0):
            raise ConfigError("grad_cost", self.grad_cost, "a positive number of forward calls")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError("lr", self.lr, "a positive learning rate")
        if self.knots is not None:
            check_int("knots", self.knots, 1)
        if self.population is not None:
            check_int("population", self.population, 2)


def build_method_config(method: str, *, lr: float | None = None, knots: int | None = 8,
                        population: int | None = None):
    """The method's config dataclass with the command's shared options applied."""
    from physim.optim.trajectory.api import config_class
    from physim.optim.trajectory.cem import CEMConfig
    from physim.optim.trajectory.cma_es import CMAESConfig
    from physim.optim.trajectory.gradient import GradientConfig
    from physim.optim.trajectory.hybrid import HybridConfig

    if method == "gradient":
        return GradientConfig(lr=lr)
    if method == "cem":
        return CEMConfig(knots=knots, **({"population": population} if population else {}))
    if method == "cmaes":
        return CMAESConfig(knots=knots, population=population)
    if method == "hybrid":
        return HybridConfig(cmaes=CMAESConfig(knots=knots, population=population),
                            cem=CEMConfig(knots=knots, **({"population": population} if population else {})),
                            gradient=replace(HybridConfig().gradient, lr=lr),
                            refine=replace(HybridConfig().refine, lr=lr))
    cls = config_class(method)
    fields = set(cls.__dataclass_fields__)
    kwargs = {k: v for k, v in (("lr", lr), ("knots", knots), ("particles", population)) if k in fields and v}
    return cls(**kwargs)


def _command(cfg: TrajoptConfig, grad_cost: float | None) -> str:
    parts = ["physim", "trajopt", cfg.task, "--method", cfg.method, "--budget", f"{cfg.budget:g}",
             "--seed", str(cfg.seed), "--out", str(cfg.out)]
    for flag, value in (("--steps", cfg.steps), ("--quality", cfg.quality), ("--grad-cost", grad_cost),
                        ("--lr", cfg.lr), ("--population", cfg.population)):
        if value is not None:
            parts += [flag, repr(value) if isinstance(value, float) else str(value)]
    parts += ["--knots", "None" if cfg.knots is None else str(cfg.knots)]
    return shlex.join(parts)


class _Progress:
    def __init__(self, total: float, enabled: bool, label: str):
        self.total, self.bar, self.next_log = total, None, 0.1
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:g} calls"),
                                TimeRemainingColumn(), TextColumn("{task.description}"))
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def __call__(self, ev, rec) -> None:
        text = f"{rec.phase:>8s}  best {ev.best_loss:.4g}"
        if self.bar is not None:
            self.bar.update(self.task, completed=min(ev.cost_used, self.total), description=text)
        elif ev.cost_used >= self.next_log * self.total:
            log.info("%3.0f%% of the budget: %s", 100 * ev.cost_used / self.total, text)
            self.next_log += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def plot_loss(result, path: Path, title: str) -> Path:
    """Loss-versus-calls PNG: best true loss so far, every true evaluation, and the phases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs, best = result.curve()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    pts = [(r.cumulative_cost, r.loss) for r in result.history if r.true_loss and math.isfinite(r.loss)]
    positive = all(v > 0 for _, v in pts) and pts
    if pts:
        ax.scatter(*zip(*pts), s=6, color="0.6", label="evaluated (true loss)", zorder=2)
    finite = [(c, b) for c, b in zip(costs, best) if math.isfinite(b)]
    if finite:
        ax.step(*zip(*finite), where="post", color="C0", lw=2, label="best so far", zorder=3)
    for k, ph in enumerate(result.info.get("phases", [])):
        ax.axvspan(ph["start_cost"], ph["end_cost"], color="C1" if ph["phase"] == "sample" else "C2", alpha=0.12,
                   label=None if k > 1 else ph["phase"] + " phase")
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("simulator calls (gradient calls at their measured cost)")
    ax.set_ylabel("task loss")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def run_trajopt(cfg: TrajoptConfig, *, progress: bool | None = None):
    """Run the optimisation of `cfg` and write the run folder; returns the `Result`."""
    from physim.optim.trajectory.api import optimize
    from physim.optim.trajectory.evaluator import CallLog
    from physim.optim.trajectory.problem import measure_grad_cost
    from physim.optim.trajectory.tasks import make_task

    method_cfg = build_method_config(cfg.method, lr=cfg.lr, knots=cfg.knots, population=cfg.population)
    out = Path(cfg.out)
    task = make_task(cfg.task, steps=cfg.steps, env_kwargs={"quality": cfg.quality} if cfg.quality else None)
    problem = task.problem
    needs_grad = cfg.method in ("gradient", "hybrid")
    if needs_grad and not problem.differentiable:
        raise ConfigError("method", cfg.method, "cem, cmaes, cbo or zo: this task is not differentiable")

    # The gradient cost: given, or taken from this folder's earlier (interrupted) run, or measured.
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                if k not in ("video", "video_format", "progress")}
    grad_cost = cfg.grad_cost
    previous = out / "config.json"
    if grad_cost is None and needs_grad and previous.is_file():
        try:
            old = json.loads(previous.read_text())
            if {k: v for k, v in old.get("settings", {}).items() if k != "grad_cost"} == \
                    {k: v for k, v in settings.items() if k != "grad_cost"}:
                grad_cost = old.get("grad_cost")
        except (json.JSONDecodeError, OSError, AttributeError):
            grad_cost = None
    if grad_cost is None and needs_grad:
        grad_cost = measure_grad_cost(problem, task.init_actions)
    resolved = {"settings": settings, "grad_cost": grad_cost, "method_config": _jsonable(asdict(method_cfg)),
                "task_description": task.description, "command": _command(cfg, grad_cost)}
    atomic_write_text(out / "config.json", json.dumps(resolved, indent=2))

    signature = {"settings": {**settings, "grad_cost": grad_cost}, "method_config": resolved["method_config"]}
    call_log = CallLog(out / "calls.pt", signature)
    show = progress if progress is not None else (cfg.progress and sys.stderr.isatty())
    bar = _Progress(cfg.budget, show, f"{cfg.method} on {cfg.task}")
    try:
        result = optimize(problem, task.init_actions, cfg.method, cfg.budget, cfg.seed, config=method_cfg,
                          grad_cost=grad_cost, call_log=call_log, on_call=bar)
    finally:
        bar.close()

    summary = {"task": task.task_id, "description": task.description, **result.to_dict(actions=True)}
    atomic_write_text(out / "result.json", json.dumps(_jsonable(summary), indent=1))
    if task.tool_path is not None:
        times, pos = task.tool_path(result.best_actions)
        atomic_write_text(out / "tool_path.json", json.dumps({
            "task": task.task_id, "seed": cfg.seed, "method": cfg.method, "best_loss": result.best_loss,
            "steps": int(result.best_actions.shape[0]), "env_settings": task.extra.get("env_settings", {}),
            "axis_names": list(task.axis_names), "units": list(task.units), "task_frame": task.frame,
            "control_dt": task.control_dt, "times": [float(t) for t in times],
            "positions": [[float(v) for v in row] for row in pos],
        }, indent=1))
    plot_loss(result, out / "loss.png", f"{cfg.method} on {cfg.task}: best {result.best_loss:.4g} "
                                        f"(initial {result.initial_loss:.4g})")
    if cfg.video and task.frames is not None:
        frames = task.frames(result.best_actions)
        if frames:
            from physim.mpm.render import save_animation  # GIF through Pillow, MP4 through PyAV

            save_animation(out / f"best.{cfg.video_format}", frames, fps=task.fps)
    return result


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def cli_trajopt(cfg: TrajoptConfig):
    """`physim trajopt`: run, then print the outcome and the files written."""
    result = run_trajopt(cfg)
    print(f"{cfg.method} on {cfg.task}: loss {result.initial_loss:.6g} -> {result.best_loss:.6g} "
          f"in {len(result.history)} calls ({result.cost_used:.1f} of {cfg.budget:g}), {result.wall_time:.1f} s")
    for name in ("config.json", "result.json", "tool_path.json", "loss.png", "best.gif", "best.mp4", "calls.pt"):
        if (Path(cfg.out) / name).exists():
            print(f"  {Path(cfg.out) / name}")
    return result
