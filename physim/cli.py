"""The `physim` command.

    physim info                 versions of every backend, the device, CPU threads
    physim demo --out DIR       the demo job (see physim.demo)

Options of each subcommand come from its frozen config dataclass (tyro). Errors in
user input are printed as one line, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import sys
from dataclasses import dataclass

from physim.errors import PhysimError

__all__ = ["InfoConfig", "info", "main"]

# (import name, label): what `physim info` reports, dolfinx included.
_VERSIONED = (
    ("torch", "torch"),
    ("warp", "warp-lang"),
    ("taichi", "taichi"),
    ("dolfinx", "dolfinx"),
    ("e3nn", "e3nn"),
    ("torch_geometric", "torch-geometric"),
    ("gymnasium", "gymnasium"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("meshio", "meshio"),
    ("h5py", "h5py"),
)


@dataclass(frozen=True, kw_only=True)
class InfoConfig:
    """Print versions of physim's backends, the device and the CPU threads."""


def _version_of(module_name: str) -> str:
    if module_name == "taichi":
        os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "False")
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # report, don't crash: this is the diagnostic command
        return f"not importable ({type(exc).__name__}: {exc})".splitlines()[0]
    version = getattr(mod, "__version__", None)
    if isinstance(version, tuple):  # taichi reports a tuple
        version = ".".join(map(str, version))
    if version is None and module_name == "warp":
        version = mod.config.version
    return str(version)


def info(cfg: InfoConfig | None = None) -> dict[str, str]:
    """Print and return the versions of physim's dependencies and the device physim will use."""
    import physim
    from physim import runtime

    rows: dict[str, str] = {"physim": physim.__version__, "python": platform.python_version()}
    for module_name, label in _VERSIONED:
        rows[label] = _version_of(module_name)
    kind = runtime.device_kind()
    rows["device"] = str(runtime.device())
    if kind == "cuda":
        import torch

        rows["gpu"] = torch.cuda.get_device_name()
    rows["cpu threads"] = str(runtime.cpu_threads())
    rows["PHYSIM_DEVICE"] = os.environ.get(runtime.DEVICE_ENV, "auto (unset)")
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return rows


def _demo(cfg):
    from physim.demo import run_demo

    result = run_demo(cfg, progress=sys.stderr.isatty())
    first, last = result.losses[0], result.losses[-1]
    print(f"loss {first:.4e} m² -> {last:.4e} m² ({first / max(last, 1e-300):.3g}x lower) "
          f"in {len(result.losses) - 1} iterations, {result.seconds:.1f} s")
    print(f"stiffness fitted: {result.stiffness:.2f} N/m")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `physim` command."""
    import tyro

    from physim.demo import DemoConfig

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    commands = {
        "info": (InfoConfig, info),
        "demo": (DemoConfig, _demo),
    }
    try:
        # tyro builds each subcommand's options from its config dataclass.
        cfg = tyro.extras.subcommand_cli_from_dict(
            {key: config_cls for key, (config_cls, _) in commands.items()},
            args=argv,
            prog="physim",
            description="physim: differentiable physics and neural operators",
        )
        for _key, (config_cls, fn) in commands.items():
            if type(cfg) is config_cls:
                fn(cfg)
                break
    except PhysimError as exc:  # bad input or a diverged simulation: one line, no traceback
        print(f"physim: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
