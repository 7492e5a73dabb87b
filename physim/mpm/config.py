"""Scene configuration of the MPM simulator: grid, time step, gravity, walls, precision."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physim.config import check_choice, check_int, check_range
from physim.errors import ConfigError
from physim.mpm.threads import resolve_cpu_threads

__all__ = ["BOUNDARIES", "SceneConfig"]

BOUNDARIES = ("sticky", "slip", "separate")


@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    """Grid, time stepping and domain walls of an MPM scene.

    The domain is the box [0, grid·dx]^dim; grid node i sits at i·dx. The outer
    `bound` layers of nodes are walls with the `boundary` condition; particles must
    start inside them and leaving the domain raises `SimulationDiverged`.

    Example::

        SceneConfig(dim=3, grid=64, dt=2e-4, substeps=10, boundary="slip")
    """

    dim: int = 3
    """Spatial dimension, 2 or 3."""
    grid: int | tuple[int, ...] = 64
    """Grid nodes per axis (one int for a cube, or one per axis), each at least 2·bound + 3."""
    dx: float | None = None
    """Grid spacing [m]; None: 1 / max(grid) (a unit domain along the longest axis)."""
    dt: float = 2e-4
    """Substep length [s]; checked against the CFL bound of the bodies' materials."""
    substeps: int = 10
    """Substeps per control step (`Simulator.step`)."""
    gravity: tuple[float, ...] | None = None
    """Gravitational acceleration [m/s²], length dim; None: 9.8 m/s² along −y."""
    boundary: str = "slip"
    """Domain walls: ``"sticky"`` (v = 0), ``"slip"`` (normal v = 0) or ``"separate"`` (no inflow)."""
    bound: int = 3
    """Wall thickness in nodes."""
    cfl: float = 0.5
    """Courant number limit: dt ≤ cfl·dx/c for the fastest wave speed c of the scene's materials."""
    dtype: str = "float32"
    """``"float32"`` (default, fast) or ``"float64"`` (gradient checks)."""
    action: str = "velocity"
    """Kinematic collider actions: ``"velocity"`` (linear and angular velocity, shape (k, 6)) or
    ``"pose"`` (target position and quaternion xyzw at the end of the step, shape (k, 7))."""
    sort_particles: bool = True
    """Visit particles in cell order (faster transfers; results equal up to summation order)."""
    cpu_threads: int | None = None
    """Threads of the untaped substep on a CPU (the transfers and the grid update split over
    them, see docs/mpm.md "Performance"); None: the environment variable ``PHYSIM_CPU_THREADS``,
    else 1. Differentiated (taped) substeps and GPU runs ignore it. Results agree with one
    thread up to float32 round-off and are bitwise reproducible for a given thread count."""

    def __post_init__(self) -> None:
        check_int("dim", self.dim, 2, 3)
        grid = self.resolution
        if len(grid) != self.dim:
            raise ConfigError("grid", self.grid, f"an int or a tuple of {self.dim} ints")
        check_int("bound", self.bound, 1, 16)
        for n in grid:
            check_int("grid", n, 2 * self.bound + 3, 4096)
        if self.dx is not None:
            check_range("dx", self.dx, 0.0, 1e6, low_inclusive=False)
        check_range("dt", self.dt, 0.0, 1.0, low_inclusive=False)
        check_int("substeps", self.substeps, 1, 1_000_000)
        if self.gravity is not None:
            g = tuple(self.gravity)
            if len(g) != self.dim:
                raise ConfigError("gravity", self.gravity, f"a sequence of {self.dim} numbers [m/s²]")
            for c in g:
                check_range("gravity", c)
        check_choice("boundary", self.boundary, BOUNDARIES)
        check_range("cfl", self.cfl, 0.0, 1.0, low_inclusive=False)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_choice("action", self.action, ("velocity", "pose"))
        if self.cpu_threads is not None:
            resolve_cpu_threads(self.cpu_threads)

    @property
    def resolution(self) -> tuple[int, ...]:
        """Nodes per axis, length dim."""
        if isinstance(self.grid, int) and not isinstance(self.grid, bool):
            return (self.grid,) * self.dim
        try:
            return tuple(self.grid)
        except TypeError:
            raise ConfigError("grid", self.grid, "an int or a tuple of ints") from None

    @property
    def spacing(self) -> float:
        """Grid spacing dx [m]."""
        return float(self.dx) if self.dx is not None else 1.0 / max(self.resolution)

    @property
    def gravity_vector(self) -> tuple[float, ...]:
        """Gravity [m/s²], length dim."""
        if self.gravity is not None:
            return tuple(float(g) for g in self.gravity)
        return (0.0, -9.8) if self.dim == 2 else (0.0, -9.8, 0.0)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64

    @property
    def domain(self) -> tuple[float, ...]:
        """Extent of the domain [m] per axis."""
        return tuple(n * self.spacing for n in self.resolution)

    @property
    def control_dt(self) -> float:
        """Duration of one control step [s]."""
        return self.dt * self.substeps
