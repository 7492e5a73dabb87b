"""Device choice, lazy backend initialisation and seeding.

The device comes from the environment variable ``PHYSIM_DEVICE``:

=========  ====================================================
``auto``   (default) CUDA if torch sees a GPU, otherwise the CPU
``cpu``    always the CPU
``cuda``   the first CUDA device; an error if there is none
=========  ====================================================

Warp and Taichi are initialised once, on first use, on the same device as torch.
Kernel caches live under ``~/.cache`` (``PHYSIM_CACHE_DIR`` overrides), never in the repository.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import random
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from physim.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEVICE_CHOICES",
    "DEVICE_ENV",
    "cache_dir",
    "cpu_threads",
    "current_seed",
    "device",
    "device_kind",
    "init_taichi",
    "init_warp",
    "seed_everything",
    "warp_device",
]

log = logging.getLogger(__name__)

DEVICE_ENV = "PHYSIM_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda")

_lock = threading.RLock()
_warp = None
_taichi = None
_taichi_seed: int | None = None
_seed = 0


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def device_kind(value: str | None = None) -> str:
    """Resolve ``PHYSIM_DEVICE`` (or `value`) to ``"cpu"`` or ``"cuda"``.

    Raises:
        ConfigError: for an unknown value, or for ``cuda`` on a machine without a CUDA device.
    """
    raw = os.environ.get(DEVICE_ENV, "auto") if value is None else value
    choice = raw.strip().lower()
    if choice not in DEVICE_CHOICES:
        raise ConfigError(DEVICE_ENV, raw, "one of " + ", ".join(DEVICE_CHOICES))
    if choice == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if choice == "cuda" and not _cuda_available():
        raise ConfigError(
            DEVICE_ENV, raw, "'cpu' or 'auto': torch sees no CUDA device on this machine (unset it or set it to cpu)"
        )
    return choice


def device(value: str | None = None) -> torch.device:
    """The torch device every physim tensor is created on."""
    import torch

    kind = device_kind(value)
    return torch.device("cuda", torch.cuda.current_device()) if kind == "cuda" else torch.device("cpu")


def warp_device(value: str | None = None) -> str:
    """The Warp device name matching `device()` (``"cpu"`` or ``"cuda:N"``)."""
    dev = device(value)
    return "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"


def cache_dir(backend: str) -> Path:
    """Per-backend kernel cache folder, outside the repository."""
    root = os.environ.get("PHYSIM_CACHE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "physim"
    path = base / backend
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_threads() -> int:
    """CPU threads available to this process (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _native_stderr_silenced(enabled: bool):
    """Discard what native code writes to file descriptor 2 inside the block.

    On a machine without a CUDA driver, Warp's native library prints "Could not find
    or load the NVIDIA CUDA driver" while it starts; on a CPU run that is expected.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def init_warp():
    """Import and initialise Warp once (quietly) and return the ``warp`` module."""
    global _warp
    with _lock:
        if _warp is None:
            kind = device_kind()  # validate before touching the backend
            import warp as wp

            # Quiet start: on a CPU-only machine Warp's "no CUDA driver" warning is expected noise.
            wp.config.log_level = wp.LOG_ERROR if kind == "cpu" else wp.LOG_WARNING
            if not os.environ.get("WARP_CACHE_PATH"):
                wp.config.kernel_cache_dir = str(cache_dir("warp"))
            with _native_stderr_silenced(kind == "cpu"):
                wp.init()
            wp.config.log_level = wp.LOG_WARNING
            if kind == "cuda" and not wp.is_cuda_available():
                raise ConfigError(DEVICE_ENV, "cuda", "'cpu': Warp found no CUDA driver although torch did")
            _warp = wp
        return _warp


def init_taichi():
    """Import and initialise Taichi once and return the ``taichi`` module.

    Taichi runs one thread per CPU core. Fields are always allocated with explicit
    dtypes by physim, so the global default float type stays float32.
    """
    global _taichi, _taichi_seed
    with _lock:
        if _taichi is None:
            kind = device_kind()
            os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "False")
            import taichi as ti

            # ti.init prints its arch on stdout; keep stdout for the caller's own output.
            with contextlib.redirect_stdout(io.StringIO()):
                ti.init(
                    arch=ti.cuda if kind == "cuda" else ti.cpu,
                    default_fp=ti.f32,
                    random_seed=_seed,
                    offline_cache=True,
                    offline_cache_file_path=str(cache_dir("taichi")),
                    log_level=ti.WARN,
                    cpu_max_num_threads=cpu_threads(),
                )
            _taichi_seed = _seed
            _taichi = ti
            # Taichi writes its offline kernel cache when its program is finalised. At interpreter exit
            # that never happens once torch's autograd graph has referenced a TaichiOp (the program is
            # kept alive by reference cycles), so every run would recompile every kernel; reset it explicitly.
            atexit.register(_taichi_shutdown)
        return _taichi


def _taichi_shutdown() -> None:
    """Finalise Taichi's program at exit so its offline kernel cache is written."""
    if _taichi is not None:
        with contextlib.suppress(Exception):
            _taichi.reset()


def current_seed() -> int:
    """The seed last given to `seed_everything` (0 by default); Warp kernels that draw
    random numbers take it as an argument, since Warp has no global generator."""
    return _seed


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and record the seed for Warp and Taichi kernels.

    Taichi's generator can only be seeded when Taichi starts. physim's own Taichi
    kernels draw no random numbers (noise is drawn in torch and passed in), so this
    only matters for user kernels calling ``ti.random``; a warning says when Taichi
    was already started with another seed.
    """
    global _seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "a non-negative integer")
    import numpy as np
    import torch

    _seed = seed
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global generator is the point
    torch.manual_seed(seed)
    if _taichi is not None and _taichi_seed != seed:
        log.warning("Taichi was started with seed %s; ti.random keeps that seed (physim kernels do not use it)",
                    _taichi_seed)
