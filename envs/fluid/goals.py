"""Goal trajectories of the shape-matching tasks: recorded once from the scripted demo, then cached.

FluidLab records its goals with ``--record`` (a scripted or teleoperated motion) into
pickles that are not distributed; physim records them on first use by running the task's
scripted demo (`TaskSpec.demo`) at the env's quality and dtype, and keeps them in memory and
in ``<cache>/envs/goals/`` (``PHYSIM_CACHE_DIR`` or ``~/.cache/physim``). The file name holds
a hash of everything that shapes the goal (scene, resolution, demo actions, dtype, physim
version, and the source code of the MPM engine and of the tasks — a changed kernel changes the
recorded trajectory in its last bits, and a goal must be reproduced exactly by its own demo),
so a changed task never reads a stale goal; a malformed file is reported and recorded again.
"""

from __future__ import annotations

import hashlib
import io
import logging

import torch

from physim.io.atomic import atomic_write_bytes
from physim.io.fingerprint import source_digest
from physim.runtime import cache_dir

__all__ = ["goal_key", "load_or_record_goal"]

log = logging.getLogger(__name__)

_MEMORY: dict[str, torch.Tensor] = {}


def goal_key(task) -> str:
    """Hash of what determines the goal trajectory of `task` (an `MPMTask`)."""
    import physim

    spec = task.spec
    h = hashlib.sha256()
    for part in (physim.__version__, spec.name, spec.dim, spec.domain, spec.dx, spec.dt, spec.substeps,
                 spec.gravity, spec.bodies, spec.tools, spec.emitters, spec.colliders, spec.horizon,
                 spec.particles_per_cell, spec.emitted_particles_per_cell, spec.boundary, spec.goal_bodies,
                 str(task.dtype)):
        h.update(repr(part).encode())
    h.update(task.demo_actions().detach().cpu().numpy().tobytes())
    # the code that records a goal: a change of the MPM kernels changes the goal
    h.update(source_digest("physim.mpm", "physim.envs.fluid").encode())
    return h.hexdigest()[:20]


def load_or_record_goal(task, quality: str) -> torch.Tensor:
    """The goal trajectory of `task` (T, n_goal, d), from memory, the disk cache, or a fresh recording."""
    key = goal_key(task)
    name = f"{task.spec.name}-{quality}-{key}"
    shape = (task.spec.horizon, int(task.loss_context.goal_ids.numel()), task.spec.dim)
    goal = _MEMORY.get(name)
    if goal is not None:
        return goal.to(task.device)
    path = cache_dir("envs") / "goals" / f"{name}.pt"
    if path.is_file():
        try:
            goal = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(goal, torch.Tensor) or tuple(goal.shape) != shape or goal.dtype != task.dtype \
                    or not bool(torch.isfinite(goal).all()):
                raise ValueError(f"expected a finite {task.dtype} tensor of shape {shape}")
        except Exception as exc:  # a damaged cache file is re-recorded, never trusted
            log.warning("%s: unreadable goal cache (%s); recording it again", path, str(exc).splitlines()[0])
            goal = None
    if goal is None:
        log.info("recording the goal of %s (%s quality, %d steps of the scripted demo)", task.spec.name, quality,
                 task.spec.horizon)
        goal = task.record_goal().detach().cpu()
        buf = io.BytesIO()
        torch.save(goal, buf)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    _MEMORY[name] = goal
    return goal.to(task.device)
