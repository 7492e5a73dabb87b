"""The `physim` command.

    physim info                 versions of every backend, the device, CPU threads
    physim demo --out DIR       the demo job (see physim.demo)
    physim sim SCENE.yaml       run an MPM scene file (see physim.mpm.cli)
    physim trajopt TASK ...     trajectory optimisation into a run folder (physim.optim.trajectory.run)
    physim export RUN_DIR ...   a run's tool trajectory for a robot controller (physim.io.export)
    physim envs                 the gymnasium environments: spaces, horizons, losses (physim.envs.cli)
    physim play ENV ...         one episode with a random/zero/demo policy, optionally a video

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

__all__ = ["COMMANDS", "InfoConfig", "info", "main"]

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


# The command table. Each entry is "module:ConfigClass:function": the config dataclass gives the
# subcommand's options (tyro), the function runs it. A nested dict is a command group
# (`physim data nse ...`). Modules named here must be cheap to import (no backend at import
# time), since `physim --help` imports every config class of a level.
COMMANDS: dict[str, str | dict[str, str]] = {
    "info": "physim.cli:InfoConfig:info",
    "demo": "physim.demo:DemoConfig:cli_demo",
    "sim": "physim.mpm.cli:SimConfig:run_sim",
    "trajopt": "physim.optim.trajectory.run:TrajoptConfig:cli_trajopt",
    "export": "physim.io.export:ExportConfig:cli_export",
    "optimizers": "physim.optim._cli:OptimizersConfig:list_command",
    "gas": {"demo": "physim.gas.demo:GasDemoConfig:cli_demo"},
    "envs": "physim.envs.cli:EnvsConfig:list_envs",
    "play": "physim.envs.cli:PlayConfig:play",
    "data": {
        "nse": "physim.spectral.data:NSEDataConfig:generate_cli",
        "darcy": "physim.solvers.datagen:DarcyDataConfig:generate_cli",
        "poisson": "physim.solvers.datagen:PoissonDataConfig:generate_cli",
        "mpm": "physim.operators.lagrangian.generate:MPMDatasetConfig:cli_generate",
    },
    "nclaw": "physim.operators.nclaw.experiment:ExperimentConfig:run",
}


class _InvalidOption(Exception):
    """A config's validation failed while the command line was parsed (not a ValueError, so the
    argument parser lets it through and `main` prints it as one line)."""


def _strict(config_cls: type) -> type:
    """Subclass of `config_cls` whose validation errors escape the argument parser unchanged.

    tyro renders a ValueError raised while it builds a config as a multi-line box; physim
    promises one line naming the field, the value and what was expected.
    """
    post_init = getattr(config_cls, "__post_init__", None)
    if post_init is None:
        return config_cls

    def __post_init__(self) -> None:
        try:
            post_init(self)
        except ValueError as exc:
            raise _InvalidOption(str(exc)) from None

    return type(config_cls.__name__, (config_cls,), {
        "__post_init__": __post_init__, "__doc__": config_cls.__doc__, "__module__": config_cls.__module__,
        "__qualname__": config_cls.__qualname__,
    })


def _resolve(entry: str):
    module_name, config_name, fn_name = entry.split(":")
    module = importlib.import_module(module_name)
    return _strict(getattr(module, config_name)), getattr(module, fn_name)


def _dispatch(table: dict, args: list[str], prog: str) -> None:
    import tyro

    if args and args[0] in table and isinstance(table[args[0]], dict):
        _dispatch(table[args[0]], args[1:], f"{prog} {args[0]}")
        return
    entries = {name: _resolve(entry) for name, entry in table.items() if isinstance(entry, str)}
    groups = [name for name, entry in table.items() if isinstance(entry, dict)]
    description = "physim: differentiable physics and neural operators"
    if groups:
        description += "\n\ncommand groups (each has its own --help): " + ", ".join(groups)
    cfg = tyro.extras.subcommand_cli_from_dict(
        {name: config_cls for name, (config_cls, _) in entries.items()}, args=args, prog=prog,
        description=description,
    )
    for config_cls, fn in entries.values():
        if type(cfg) is config_cls:
            fn(cfg)
            return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `physim` command."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _dispatch(COMMANDS, args, "physim")
    except (PhysimError, _InvalidOption) as exc:  # bad input or a diverged simulation: one line, no traceback
        print(f"physim: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
