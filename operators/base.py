"""Self-registering neural operators that save and load without a config file.

Subclass `OperatorBase` with a registry name; the constructor's keyword arguments are
recorded automatically, so a saved file rebuilds the exact model::

    class SFNO(OperatorBase, name="sfno"):
        def __init__(self, *, modes: int = 12, width: int = 32):
            super().__init__()
            ...

    model.save("runs/sfno/best.pt")            # atomic: weights + metadata
    same = physim.operators.load("runs/sfno/best.pt")

(The pattern follows neuraloperator's `BaseModel`, which stores init kwargs and the
version in the state dict.)
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from physim.errors import FileError

__all__ = ["FORMAT_VERSION", "OperatorBase", "OperatorFileError", "load_operator", "registered_operators"]

FORMAT_VERSION = 1
"""Version of the saved-file layout; bumped when an old file can no longer be read."""

_REGISTRY: dict[str, type[OperatorBase]] = {}


class OperatorFileError(FileError):
    """A saved operator file is missing, truncated, malformed or from an incompatible version."""


def _json_ready(value: Any, where: str) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        raise TypeError(
            f"{where}={value!r} cannot be saved: operator constructor arguments must be JSON-serialisable "
            "(numbers, strings, bools, None, lists and dicts of them)"
        ) from None
    return value


class OperatorBase(nn.Module):
    """Base class of physim's neural operators.

    Subclasses pass ``name=...`` in their class statement to register themselves and
    take keyword arguments only. `metadata()` returns the registry name, the
    constructor arguments (defaults included), the class's module and physim's version.
    """

    operator_name: ClassVar[str | None] = None

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            existing = _REGISTRY.get(name)
            if existing is not None and existing.__qualname__ != cls.__qualname__:
                raise ValueError(f"operator name {name!r} is taken by {existing.__module__}.{existing.__qualname__}")
            _REGISTRY[name] = cls
            cls.operator_name = name
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            if args:
                raise TypeError(f"{cls.__name__} takes keyword arguments only, got {len(args)} positional")
            outermost = "_init_kwargs" not in self.__dict__
            if outermost:
                bound = signature.bind(self, **kw)
                bound.apply_defaults()
                recorded = {k: v for k, v in bound.arguments.items() if k != "self"}
                for k, v in list(recorded.items()):
                    param = signature.parameters[k]
                    if param.kind is inspect.Parameter.VAR_KEYWORD:
                        recorded.pop(k)
                        recorded.update(v)
                self.__dict__["_init_kwargs"] = {k: _json_ready(v, f"{cls.__name__}.{k}") for k, v in recorded.items()}
            init(self, **kw)

        cls.__init__ = recording_init

    def metadata(self) -> dict[str, Any]:
        """Everything needed to rebuild this operator: name, kwargs, module, versions."""
        import physim

        name = type(self).operator_name
        if name is None:
            raise TypeError(f"{type(self).__name__} is not registered: declare it with `name=...`")
        return {
            "name": name,
            "kwargs": dict(self.__dict__.get("_init_kwargs", {})),
            "module": type(self).__module__,
            "physim_version": physim.__version__,
            "format_version": FORMAT_VERSION,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and metadata to `path` atomically; returns the path."""
        from physim.io.atomic import atomic_path

        payload = {"metadata": self.metadata(), "state_dict": {k: v.detach().cpu() for k, v in
                                                              self.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)


def registered_operators() -> dict[str, str]:
    """Registry name -> ``module.Class`` of every operator imported so far."""
    return {name: f"{cls.__module__}.{cls.__qualname__}" for name, cls in sorted(_REGISTRY.items())}


def load_operator(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> OperatorBase:
    """Rebuild an operator saved with `OperatorBase.save` and load its weights.

    Raises:
        OperatorFileError: the file is missing, truncated, not an operator file, from an
            incompatible format version, or names an operator that cannot be found.
    """
    path = Path(path)
    if not path.is_file():
        raise OperatorFileError(path, "no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise OperatorFileError(path, f"cannot be read as a physim operator file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or "metadata" not in payload or "state_dict" not in payload:
        raise OperatorFileError(path, "not a physim operator file (missing 'metadata' or 'state_dict')")
    meta = payload["metadata"]
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise OperatorFileError(path, f"format version {version!r} is not supported (this physim reads "
                                      f"{FORMAT_VERSION}; it was written by physim {meta.get('physim_version')})")
    name = meta.get("name")
    if name not in _REGISTRY and meta.get("module"):
        try:
            importlib.import_module(meta["module"])
        except ImportError:
            pass
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none imported"
        raise OperatorFileError(path, f"operator {name!r} is unknown (registered: {known})")
    model = _REGISTRY[name](**meta.get("kwargs", {}))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise OperatorFileError(path, f"weights do not fit {name}: {str(exc).splitlines()[0]}") from None
    return model.to(map_location)
