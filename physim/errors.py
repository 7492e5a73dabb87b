"""Exceptions shared by every physim module.

Messages are meant to be read by a user: they name the offending field or
quantity, the value seen, and what was expected.
"""

from __future__ import annotations

__all__ = ["ConfigError", "FileError", "PhysimError", "SimulationDiverged"]


class PhysimError(Exception):
    """Base class of physim's own errors; the `physim` command prints these as one line."""


class ConfigError(PhysimError, ValueError):
    """A configuration value or environment variable is invalid.

    Subclasses `ValueError` so code that validates input with `except ValueError` keeps working.
    """

    def __init__(self, field: str, value: object, expected: str):
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}={value!r} is invalid: expected {expected}")


class FileError(PhysimError, ValueError):
    """A file physim reads is missing, truncated, malformed or from an incompatible version.

    The message is one line, ``"<path>: <problem>"``. Each kind of file has its own subclass
    (datasets, operator files, robot profiles, ...), so callers can catch just the kind they read.

    Attributes:
        path: The file, as given.
        problem: What is wrong with it.
    """

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class SimulationDiverged(PhysimError, RuntimeError):
    """A rollout produced a non-finite value or left its domain.

    Attributes:
        substep: Global substep index at which the problem was detected.
        quantity: Name of the offending quantity (e.g. ``"particle_x"``).
        detail: Human-readable description of what was found.
    """

    def __init__(self, substep: int, quantity: str, detail: str):
        self.substep = substep
        self.quantity = quantity
        self.detail = detail
        super().__init__(f"simulation diverged at substep {substep}: {quantity} {detail}")
