"""Helpers for validated, frozen configuration dataclasses.

Every physim config is a frozen, keyword-only dataclass whose ``__post_init__``
calls these checks, so a wrong value fails on construction with a message that
names the field, the value and the allowed range, before any kernel runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from physim.errors import ConfigError

__all__ = ["check_choice", "check_int", "check_positive", "check_range"]


def check_range(
    field: str,
    value: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise `ConfigError` unless ``low <= value <= high`` (bounds per the flags) and value is finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(field, value, "a real number") from None
    lo_ok = v >= low if low_inclusive else v > low
    hi_ok = v <= high if high_inclusive else v < high
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        raise ConfigError(field, value, f"a finite number in {lb}{low}, {high}{hb}")


def check_positive(field: str, value: float) -> None:
    """Raise `ConfigError` unless value is a finite number > 0."""
    check_range(field, value, 0.0, math.inf, low_inclusive=False)


def check_int(field: str, value: int, low: int = 0, high: int | None = None) -> None:
    """Raise `ConfigError` unless value is an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, "an integer")
    if value < low or (high is not None and value > high):
        raise ConfigError(field, value, f"an integer in [{low}, {'inf' if high is None else high}]")


def check_choice(field: str, value: object, choices: Iterable[object]) -> None:
    """Raise `ConfigError` unless value is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(field, value, "one of " + ", ".join(repr(c) for c in choices))
