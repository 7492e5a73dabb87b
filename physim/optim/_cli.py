"""`physim optimizers`: list the optimizer registry from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from physim.config import check_choice

__all__ = ["OptimizersConfig", "list_command"]


@dataclass(frozen=True, kw_only=True)
class OptimizersConfig:
    """List the optimizers `TrainConfig(optimizer=...)` accepts, with what each needs."""

    source: str | None = None
    """Only this source: torch.optim, pytorch_optimizer or physim."""
    name: str | None = None
    """Show one optimizer in detail (its flags, note and constructor defaults)."""

    def __post_init__(self) -> None:
        if self.source is not None:
            check_choice("source", self.source, ("torch.optim", "pytorch_optimizer", "physim"))


def list_command(cfg: OptimizersConfig) -> list[str]:
    """Print one line per optimizer (or the details of `cfg.name`); returns the printed lines."""
    import inspect

    from physim.optim.registry import list_optimizers, optimizer_info

    if cfg.name is not None:
        info = optimizer_info(cfg.name)
        sig = inspect.signature(info.cls.__init__)
        lines = [f"{info.name}: {info.description} ({info.source})",
                 f"  needs_hessian={info.needs_hessian} needs_closure={info.needs_closure} "
                 f"zeroth_order={info.zeroth_order} takes_model={info.takes_model}"]
        if info.note:
            lines.append(f"  note: {info.note}")
        lines += [f"  {p.name}={p.default!r}" for p in sig.parameters.values()
                  if p.name not in ("self", "params", "model") and p.default is not inspect.Parameter.empty]
    else:
        lines = []
        for info in list_optimizers(cfg.source, details=True):
            flags = ",".join(f for f, on in (("hessian", info.needs_hessian), ("closure", info.needs_closure),
                                              ("zeroth-order", info.zeroth_order)) if on)
            lines.append(f"{info.name:32s} {info.source:18s} {flags:22s} {info.note}".rstrip())
    for line in lines:
        print(line)
    return lines
