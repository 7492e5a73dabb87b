"""Shared pytest setup: tests run on the CPU unless PHYSIM_TEST_DEVICE says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# CPU is the default and must be fully tested; `PHYSIM_TEST_DEVICE=cuda` runs the suite on a GPU.
os.environ["PHYSIM_DEVICE"] = os.environ.get("PHYSIM_TEST_DEVICE", "cpu")

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one xdist worker per core: a second torch thread per worker would only
    # oversubscribe the cores (the suite's tensors are small; thread wake-ups dominate).
    import torch

    torch.set_num_threads(1)


def run_python(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 600):
    """Run the test interpreter in a subprocess and return the CompletedProcess (text mode)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


@pytest.fixture
def python():
    return run_python


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module with one intra-op torch thread (restored afterwards).

    Tests on tensors of a few thousand entries gain nothing from more threads, and on a
    loaded 2-core machine the thread wake-ups dominate (torch.cos on 2000 doubles: 8 µs
    with one thread, 30 ms with two). Use ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
