"""One registry of training optimizers, by name.

Three sources, in this order of precedence for a plain name:

1. ``torch.optim`` (``adam``, ``adamw``, ``sgd``, ``lbfgs``, ``radam`` …),
2. physim's own optimizers (``mezo``, ``sparse_mezo``, ``spsa``, ``mfac``, ``cbo``),
3. ``pytorch-optimizer`` (pinned in ``pyproject.toml``): ``adan``, ``lion``, ``sophiah``,
   ``adabelief``, ``adahessian``, ``diffgrad``, ``adamp``, ``exadam`` and the other ~120.

Where torch.optim and pytorch-optimizer both define a name (``radam``, ``adafactor``,
``muon``, ``adadelta``, ``adamax``, ``asgd``), the plain name is torch's and the other
one is reachable as ``"pytorch_optimizer.<name>"``; ``"torch.<name>"`` always names
torch's. Names are case-insensitive and ignore ``-``/``_`` (``"Sparse-MeZO"`` works).

Example::

    from physim.optim import make_optimizer, optimizer_info
    opt = make_optimizer("adan", model.parameters(), lr=1e-3)
    optimizer_info("adahessian").needs_hessian   # True: call loss.backward(create_graph=True)
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from physim.errors import ConfigError

__all__ = ["OptimizerInfo", "list_optimizers", "make_optimizer", "optimizer_info"]

#: Optimizers that estimate Hessian diagonals by Hutchinson probes of the gradient graph.
_NEEDS_HESSIAN = frozenset({"adahessian", "sophiah"})
#: pytorch-optimizer classes that take the model itself instead of its parameters.
_TAKES_MODEL = frozenset({"lomo", "adalomo", "adammini"})
#: Optimizers whose ``step`` must be given a closure (re-evaluates the loss).
_NEEDS_CLOSURE = frozenset({"lbfgs", "alig", "bsam", "mezo", "sparsemezo", "spsa", "cbo"})

#: pytorch-optimizer entries that need more than (params, lr): the note says what (shown by optimizer_info).
_SPECIAL = {
    "muon": "needs parameter groups flagged use_muon (2-D weights) as pytorch-optimizer documents",
    "adamuon": "needs parameter groups flagged use_muon, as muon",
    "muonclip": "needs parameter groups flagged use_muon, as muon",
    "normuon": "needs parameter groups flagged use_muon, as muon",
    "distributedmuon": "needs torch.distributed and use_muon parameter groups",
    "adago": "needs parameter groups flagged use_muon, as muon",
    "spectralsphere": "only 2-D parameters",
    "lomo": "fused backward: call optimizer.fused_backward(loss, lr) instead of loss.backward()/step()",
    "adalomo": "fused backward: call optimizer.fused_backward(loss, lr) instead of loss.backward()/step()",
    "alig": "step(closure) must return the loss; adaptive step from the loss value",
    "bsam": "needs num_data (training-set size)",
    "ranger21": "needs num_iterations (total optimizer steps)",
    "demo": "needs the einops package (not a physim dependency)",
    "sparseadam": "sparse gradients only (nn.Embedding(sparse=True))",
    "magma": "wraps another optimizer: pass optimizer=<torch.optim.Optimizer>",
}

_PHYSIM = {
    "mezo": ("physim.optim.zeroth_order", "MeZO", "zeroth-order SGD with the seed trick (MeZO)"),
    "sparse_mezo": ("physim.optim.zeroth_order", "SparseMeZO", "MeZO perturbing only small-magnitude weights"),
    "spsa": ("physim.optim.zeroth_order", "SPSA", "SPSA / ZO-SGD with n stored perturbations per step"),
    "mfac": ("physim.optim.mfac", "MFAC", "M-FAC sliding-window inverse-Fisher preconditioned SGD"),
    "cbo": ("physim.optim.cbo", "CBOptimizer", "consensus-based optimisation over a model's parameters"),
}

# pytorch-optimizer classes take **kwargs and ignore most of them; these few they do read.
_READ_FROM_KWARGS = frozenset({"beta1", "clip_global_grad_norm", "momentum"})

# Hyper-parameters checked before construction, so a bad value names the argument even
# when the underlying class would accept it silently or fail with an obscure message.
_NONNEG = ("lr", "weight_decay", "eps", "momentum", "dampening")


@dataclass(frozen=True)
class OptimizerInfo:
    """What a training loop must know about an optimizer before using it.

    Attributes:
        name: Canonical registry name (``"adam"``, ``"pytorch_optimizer.radam"``, ``"mezo"``).
        source: ``"torch.optim"``, ``"pytorch_optimizer"`` or ``"physim"``.
        cls: The optimizer class.
        needs_hessian: ``step`` uses Hessian-vector products: call
            ``loss.backward(create_graph=True)`` and keep the loss twice differentiable
            (no Warp/Taichi kernels in its graph).
        needs_closure: ``step(closure)`` must be given a closure returning the loss.
        zeroth_order: Uses loss values only; the closure must NOT call ``backward``.
        takes_model: The constructor wants the ``nn.Module`` itself, not its parameters.
        description: One line for ``list_optimizers(details=True)``.
        note: What it needs beyond ``(params, lr)``, if anything (e.g. muon's parameter groups).
    """

    name: str
    source: str
    cls: type
    needs_hessian: bool = False
    needs_closure: bool = False
    zeroth_order: bool = False
    takes_model: bool = False
    description: str = ""
    note: str = ""


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _torch_classes() -> dict[str, type]:
    out = {}
    for attr in dir(torch.optim):
        obj = getattr(torch.optim, attr)
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            out[attr.lower()] = obj
    return out


@lru_cache(maxsize=1)
def _registry() -> dict[str, OptimizerInfo]:
    """Canonical name → info; built once, on first use (pytorch-optimizer imports lazily)."""
    reg: dict[str, OptimizerInfo] = {}
    torch_cls = _torch_classes()
    for name, cls in sorted(torch_cls.items()):
        reg[name] = OptimizerInfo(
            name=name, source="torch.optim", cls=cls, needs_closure=name in _NEEDS_CLOSURE,
            description=f"torch.optim.{cls.__name__}", note=_SPECIAL.get(name, ""),
        )
    for name, (module, attr, desc) in _PHYSIM.items():
        cls = getattr(importlib.import_module(module), attr)
        zeroth = name != "mfac"  # M-FAC is a first-order method; the others use loss values only
        reg[name] = OptimizerInfo(
            name=name, source="physim", cls=cls, needs_closure=zeroth, zeroth_order=zeroth, description=desc
        )
    import pytorch_optimizer as po

    for name in po.get_supported_optimizers():
        cls = po.load_optimizer(name)
        if cls.__module__.startswith("torch.optim"):
            continue  # pytorch-optimizer re-exports some torch classes; torch's entry already covers them
        canonical = f"pytorch_optimizer.{name}" if name in reg else name
        reg[canonical] = OptimizerInfo(
            name=canonical, source="pytorch_optimizer", cls=cls,
            needs_hessian=name in _NEEDS_HESSIAN, needs_closure=name in _NEEDS_CLOSURE,
            takes_model=name in _TAKES_MODEL, description=f"pytorch_optimizer.{cls.__name__}",
            note=_SPECIAL.get(name, ""),
        )
    return reg


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    """Normalised spelling → canonical name (plain, ``torch.``- and ``pytorch_optimizer.``-prefixed)."""
    table: dict[str, str] = {}
    for canonical, info in _registry().items():
        plain = canonical.split(".", 1)[-1]
        table[_key(canonical)] = canonical
        table[_key(f"{info.source.split('.')[0]}.{plain}")] = canonical
        table.setdefault(_key(plain), canonical)
    return table


def list_optimizers(source: str | None = None, *, details: bool = False) -> list[str] | list[OptimizerInfo]:
    """Names accepted by `make_optimizer`, sorted.

    Args:
        source: Restrict to ``"torch.optim"``, ``"pytorch_optimizer"`` or ``"physim"``.
        details: Return `OptimizerInfo` records instead of names.
    """
    sources = ("torch.optim", "pytorch_optimizer", "physim")
    if source is not None and source not in sources:
        raise ConfigError("source", source, "one of " + ", ".join(map(repr, sources)) + " or None")
    infos = [i for i in _registry().values() if source is None or i.source == source]
    infos.sort(key=lambda i: i.name)
    return infos if details else [i.name for i in infos]


def optimizer_info(name: str) -> OptimizerInfo:
    """The `OptimizerInfo` of `name`; an unknown name raises `ConfigError` listing the valid ones."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("optimizer", name, "a non-empty optimizer name (see physim.optim.list_optimizers())")
    canonical = _lookup().get(_key(name))
    if canonical is None:
        names = list_optimizers()
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ConfigError("optimizer", name, f"a registered name; {hint}valid names: {', '.join(names)}")
    return _registry()[canonical]


def _check_hyperparameters(kwargs: dict[str, Any]) -> None:
    for field in _NONNEG:
        if field in kwargs and kwargs[field] is not None and not isinstance(kwargs[field], torch.Tensor):
            v = kwargs[field]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(field, v, "a finite number >= 0")
    betas = kwargs.get("betas")
    if betas is not None:
        if not isinstance(betas, (tuple, list)) or not betas:
            raise ConfigError("betas", betas, "a tuple of numbers in [0, 1)")
        for i, b in enumerate(betas):
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not (0.0 <= b < 1.0):
                raise ConfigError(f"betas[{i}]", b, "a number in [0, 1)")


def _accepted(cls: type) -> tuple[set[str], set[str], bool]:
    """(accepted keywords, required keywords, takes **kwargs) of an optimizer's constructor."""
    sig = inspect.signature(cls.__init__)
    plain = [p for p in sig.parameters.values() if p.name not in ("self", "params", "model")
             and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    required = {p.name for p in plain if p.default is inspect.Parameter.empty}
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return {p.name for p in plain}, required, has_var_kw


def make_optimizer(
    name: str,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]] | torch.nn.Module,
    lr: float | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    Args:
        name: A name from `list_optimizers` (case-insensitive; ``-``/``_`` ignored).
        params: Parameters or parameter groups, or an ``nn.Module`` (its ``parameters()``;
            the few optimizers that need the module itself get it).
        lr: Learning rate; ``None`` keeps the optimizer's own default.
        **kwargs: Passed to the optimizer's constructor (``betas``, ``weight_decay`` …).

    Returns:
        The optimizer. ``optimizer_info(name)`` says whether it needs a closure or
        ``backward(create_graph=True)``.

    Raises:
        ConfigError: Unknown name (the message lists the valid ones), a negative or
            non-finite ``lr``/``weight_decay``/``eps``/``momentum``, ``betas`` outside
            [0, 1), or a keyword the optimizer does not take (the message lists those it does).
    """
    info = optimizer_info(name)
    if lr is not None:
        kwargs["lr"] = lr
    _check_hyperparameters(kwargs)
    accepted, required, var_kw = _accepted(info.cls)
    # A misspelt keyword must not be swallowed silently by a **kwargs constructor.
    # (physim's own **kwargs, e.g. CBOptimizer's CBOConfig fields, are validated by the class itself.)
    open_kw = var_kw and info.source == "physim"
    unknown = sorted(k for k in kwargs if k not in accepted and not open_kw
                     and not (var_kw and k in _READ_FROM_KWARGS))
    if unknown:
        raise ConfigError(
            unknown[0], kwargs[unknown[0]], f"a keyword {info.name} accepts: {', '.join(sorted(accepted))}"
        )
    missing = sorted(required - set(kwargs))
    if missing:
        raise ConfigError(missing[0], None, f"a value: {info.name} requires {', '.join(missing)}"
                          + (f" ({info.note})" if info.note else ""))
    if info.takes_model:
        if not isinstance(params, torch.nn.Module):
            raise ConfigError("params", type(params).__name__, f"the nn.Module itself for {info.name}")
        return info.cls(params, **kwargs)
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    params = list(params)
    if not params:
        raise ConfigError("params", "[]", "at least one parameter tensor or parameter group")
    try:
        return info.cls(params, **kwargs)
    except TypeError as exc:
        raise ConfigError("kwargs", sorted(kwargs), f"arguments {info.name} accepts ({exc})") from None

