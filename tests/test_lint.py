"""Verify the code passes ruff, which also bans module-level imports of the lazy backends (TID253)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO


def test_ruff_clean():
    """Verify `ruff check` finds nothing in physim/, operators/, envs/, tests/ and scripts/."""
    ruff = shutil.which("ruff") or str(__import__("pathlib").Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "--output-format", "concise", "physim", "operators", "envs", "tests",
                          "scripts"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
