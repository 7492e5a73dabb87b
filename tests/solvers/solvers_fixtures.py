"""Fixtures shared by the solver tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch and BLAS single-threaded: the suite runs one worker per core, and these problems are small.

    Oversubscribed BLAS/torch threads make small solves 10-40x slower on a busy two-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
