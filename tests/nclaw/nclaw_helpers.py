"""Helpers of the NCLaw tests (imported by name: tests/nclaw is on sys.path under pytest)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def single_thread():
    """One torch thread: tiny tensors, where torch's thread pool only adds synchronisation, which on a
    loaded 2-core machine costs milliseconds per operation."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def float64_single_thread():
    """float64 by default (e3nn's constants are exact to the dtype a module is built in) and one
    torch thread (tiny tensors: a thread pool only adds synchronisation on a loaded machine)."""
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


def perturbed(model: torch.nn.Module, seed: int = 2, scale: float = 0.3) -> torch.nn.Module:
    """The model with every parameter moved randomly, as after training (the last layers start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def random_F(n: int, dim: int, scale: float, seed: int = 1, min_det: float | None = 0.2) -> torch.Tensor:
    """Random deformation gradients I + scale·N(0, 1), shape (≤n, dim, dim), keeping det F > min_det."""
    gen = torch.Generator().manual_seed(seed)
    F = torch.eye(dim) + scale * torch.randn(n, dim, dim, generator=gen)
    return F if min_det is None else F[torch.linalg.det(F) > min_det]
