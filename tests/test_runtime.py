"""Verify device selection, its error messages, seeding and cache placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO, run_python

from physim import runtime
from physim.errors import ConfigError


def test_unknown_device_value_names_variable_value_and_choices(monkeypatch):
    """Verify that an unknown PHYSIM_DEVICE is one clear error."""
    monkeypatch.setenv("PHYSIM_DEVICE", "tpu")
    with pytest.raises(ConfigError) as err:
        runtime.device_kind()
    msg = str(err.value)
    assert "PHYSIM_DEVICE" in msg and "'tpu'" in msg and "auto, cpu, cuda" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    """Verify that PHYSIM_DEVICE=cuda on a CPU-only machine raises before any backend starts."""
    monkeypatch.setenv("PHYSIM_DEVICE", "cuda")
    with pytest.raises(ConfigError, match="PHYSIM_DEVICE='cuda' is invalid: expected 'cpu' or 'auto'"):
        runtime.device()


def test_auto_and_explicit_cpu(monkeypatch):
    """Verify that auto resolves to CUDA exactly when torch sees it, and cpu is always the CPU."""
    monkeypatch.setenv("PHYSIM_DEVICE", "auto")
    assert runtime.device_kind() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("PHYSIM_DEVICE", " CPU ")
    assert runtime.device() == torch.device("cpu")
    assert runtime.warp_device() == "cpu"


def test_seed_everything_repeats_torch_and_numpy():
    """Verify that seeding twice gives the same torch and numpy draws."""
    runtime.seed_everything(123)
    a = (torch.rand(4), np.random.rand(4))  # noqa: NPY002
    runtime.seed_everything(123)
    b = (torch.rand(4), np.random.rand(4))  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert runtime.current_seed() == 123
    with pytest.raises(ConfigError, match="seed=-1"):
        runtime.seed_everything(-1)


def test_backends_initialise_once_with_caches_outside_repo(tmp_path):
    """Verify that Warp and Taichi start once, and keep their kernel caches out of the repository."""
    code = (
        "from physim import runtime; wp = runtime.init_warp(); ti = runtime.init_taichi();"
        "assert runtime.init_warp() is wp and runtime.init_taichi() is ti;"
        "print(wp.config.kernel_cache_dir)"
    )
    res = run_python("-c", code, env={"PHYSIM_CACHE_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(str(tmp_path))
    assert (tmp_path / "taichi").is_dir()
    assert str(REPO) not in res.stdout
