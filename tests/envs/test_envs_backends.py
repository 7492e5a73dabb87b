"""physim.envs sees simulators only through torch: it never imports Warp or Taichi itself."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from conftest import REPO, run_python


def test_importing_and_making_envs_loads_no_backend():
    """Verify in a fresh process: import physim.envs, gym.make every MPM id and list them: no warp, no taichi."""
    code = (
        "import sys, json, gymnasium as gym, physim.envs\n"
        "from physim.envs.fluid.registry import TASKS, env_id\n"
        "envs = [gym.make(env_id(t)) for t in TASKS if t != 'Circulation']\n"
        "print(json.dumps([m for m in ('warp', 'taichi') if m in sys.modules]))\n"
    )
    res = run_python("-c", code)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_no_source_file_of_envs_imports_a_backend():
    """Verify by parsing every module under envs/ that none imports warp or taichi, at any level."""
    offenders = []
    for path in sorted(Path(REPO, "envs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in ("warp", "taichi")]
    assert not offenders, offenders
