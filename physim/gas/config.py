"""Configuration and state of the Eulerian gas (smoke/air) grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError

__all__ = ["ADVECTION", "BACKTRACE", "DTYPES", "FAN_PROFILES", "SOLVERS", "FanConfig", "GasConfig", "GasState"]

SOLVERS = ("jacobi", "cg")
ADVECTION = ("semi_lagrangian", "maccormack")
BACKTRACE = ("euler", "rk2", "rk3")
FAN_PROFILES = ("exponential", "gaussian")
DTYPES = ("float32", "float64")


def _check_vector(name: str, value, length: int, *, positive: bool = False) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise ConfigError(name, value, f"a tuple of {length} numbers")
    for i, v in enumerate(value):
        (check_positive if positive else check_range)(f"{name}[{i}]", v)


@dataclass(frozen=True, kw_only=True)
class FanConfig:
    """A fan or source: a blob that accelerates the air and relaxes the smoke toward a value.

    Its influence on a point x falls off with the distance to `center` as
    ``w = exp(-|x - c| / r)`` (``profile="exponential"``, FluidLab's "aircon") or
    ``w = exp(-|x - c|² / r²)`` (``"gaussian"``). Every substep it adds
    ``dt · w · strength · direction`` to the velocity and moves the smoke a fraction
    ``mix · w`` of the way toward `emit`. These values are the defaults of the fan's
    row in a step's action (see `GasSimulator.fan_action`); actions override them.
    """

    center: tuple[float, ...]
    """Position of the fan [m], one entry per grid axis."""
    direction: tuple[float, ...]
    """Direction of the jet, one entry per grid axis; multiplied by `strength` (not normalised)."""
    strength: float = 1.0
    """Acceleration of the air at the fan's center [m/s²] (per unit length of `direction`)."""
    radius: float = 0.05
    """Fall-off length r of the influence [m]."""
    mix: float = 0.0
    """Fraction of the way the smoke moves toward `emit` per substep at the center, in [0, 1]."""
    emit: tuple[float, ...] = (1.0,)
    """Smoke value the fan emits, one entry per smoke channel."""


@dataclass(frozen=True, kw_only=True)
class GasConfig:
    """An incompressible gas on a uniform staggered (MAC) grid in a closed box.

    One control step is `substeps` substeps of length `dt`; each substep advects the
    smoke and the velocity (semi-Lagrangian or MacCormack), applies fans, buoyancy and
    dissipation, and projects the velocity to be divergence-free (Jacobi or conjugate
    gradients). The box walls and the optional solid cells are free-slip, no-through.
    Axis `up_axis` points up (FluidLab: y, axis 1).
    """

    resolution: tuple[int, ...] = (32, 32, 32)
    """Cells per axis; 2 entries for a 2D grid, 3 for 3D."""
    cell_size: float = 1.0 / 32
    """Edge length h of a cell [m]; the box spans ``resolution · cell_size``."""
    origin: tuple[float, ...] | None = None
    """Position of the box's low corner [m] (default: the origin). Fan centers are in these world coordinates."""
    dt: float = 0.03
    """Substep length [s] (FluidLab: 0.03)."""
    substeps: int = 1
    """Substeps per control step."""
    smoke_channels: int = 1
    """Scalars carried by the air (channel 0 feels buoyancy; FluidLab's Circulation uses it as temperature)."""
    advection: str = "semi_lagrangian"
    """``"semi_lagrangian"`` or ``"maccormack"`` (second order, with Selle et al.'s min/max limiter)."""
    backtrace: str = "rk3"
    """Integrator of the characteristic traced back from each sample: ``"euler"``, ``"rk2"``, ``"rk3"`` (FluidLab)."""
    solver: str = "jacobi"
    """Pressure solver: ``"jacobi"`` (fixed iteration count, gradient through every iteration) or
    ``"cg"`` (conjugate gradients to a tolerance, gradient by an adjoint solve)."""
    jacobi_iterations: int = 500
    """Jacobi sweeps per substep (FluidLab: 500; 50 in Circulation)."""
    jacobi_omega: float = 0.8
    """Jacobi relaxation weight in (0, 1]. 1 is FluidLab's plain Jacobi: on the grid's checkerboard
    mode its error factor is −1, so it never converges fully (it stalls at a relative divergence
    of ~1e-2 on asymmetric flows); below 1 that factor is |1 − 2ω| and the sweeps converge."""
    cg_tolerance: float = 1e-6
    """CG stops when the residual's 2-norm is below this fraction of the right-hand side's."""
    cg_max_iterations: int = 2000
    """CG gives up (with a logged warning) after this many iterations."""
    warm_start: bool = True
    """Start each pressure solve from the previous substep's pressure (as FluidLab does)."""
    buoyancy: float = 0.0
    """Initial value of the buoyancy parameter: upward acceleration per unit of smoke channel 0 [m/s²]."""
    smoke_dissipation: float = 0.0
    """Initial value of the smoke decay rate [1/s]: smoke is multiplied by exp(-rate · dt) each substep."""
    velocity_dissipation: float = 0.0
    """Initial value of the velocity decay rate [1/s]."""
    fan_profile: str = "exponential"
    """Fall-off of every fan's influence: ``"exponential"`` (FluidLab) or ``"gaussian"``."""
    fans: tuple[FanConfig, ...] = ()
    """Fans and sources; each one is a row of the action (see `GasSimulator.fan_action`)."""
    up_axis: int = 1
    """Axis along which buoyancy pushes."""
    dtype: str = "float32"
    """``"float32"`` (default) or ``"float64"`` (gradient checks)."""
    check_finite: bool = True
    """Raise `SimulationDiverged` when a step produces NaN or inf (one reduction per step)."""

    def __post_init__(self) -> None:
        res = self.resolution
        if not isinstance(res, (tuple, list)) or len(res) not in (2, 3):
            raise ConfigError("resolution", res, "a tuple of 2 or 3 cell counts")
        for i, n in enumerate(res):
            check_int(f"resolution[{i}]", n, 2, 4096)
        check_positive("cell_size", self.cell_size)
        if self.origin is not None:
            _check_vector("origin", self.origin, len(res))
        check_range("dt", self.dt, 0.0, 10.0, low_inclusive=False)
        check_int("substeps", self.substeps, 1, 10_000)
        check_int("smoke_channels", self.smoke_channels, 1, 16)
        check_choice("advection", self.advection, ADVECTION)
        check_choice("backtrace", self.backtrace, BACKTRACE)
        check_choice("solver", self.solver, SOLVERS)
        check_int("jacobi_iterations", self.jacobi_iterations, 0, 1_000_000)
        check_range("jacobi_omega", self.jacobi_omega, 0.0, 1.0, low_inclusive=False)
        check_range("cg_tolerance", self.cg_tolerance, 0.0, 1.0, low_inclusive=False)
        check_int("cg_max_iterations", self.cg_max_iterations, 1, 10_000_000)
        if not isinstance(self.warm_start, bool):
            raise ConfigError("warm_start", self.warm_start, "True or False")
        check_range("buoyancy", self.buoyancy)
        check_range("smoke_dissipation", self.smoke_dissipation, 0.0)
        check_range("velocity_dissipation", self.velocity_dissipation, 0.0)
        check_choice("fan_profile", self.fan_profile, FAN_PROFILES)
        check_int("up_axis", self.up_axis, 0, len(res) - 1)
        check_choice("dtype", self.dtype, DTYPES)
        if not isinstance(self.fans, (tuple, list)):
            raise ConfigError("fans", self.fans, "a tuple of FanConfig")
        hi = max(self.extent)
        for k, fan in enumerate(self.fans):
            if not isinstance(fan, FanConfig):
                raise ConfigError(f"fans[{k}]", fan, "a FanConfig")
            _check_vector(f"fans[{k}].center", fan.center, self.dim)
            _check_vector(f"fans[{k}].direction", fan.direction, self.dim)
            check_range(f"fans[{k}].strength", fan.strength)
            check_range(f"fans[{k}].radius", fan.radius, 0.0, 10 * hi, low_inclusive=False)
            check_range(f"fans[{k}].mix", fan.mix, 0.0, 1.0)
            _check_vector(f"fans[{k}].emit", fan.emit, self.smoke_channels)

    # -- derived ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.resolution)

    @property
    def extent(self) -> tuple[float, ...]:
        """Size of the box [m] per axis."""
        return tuple(n * self.cell_size for n in self.resolution)

    @property
    def lower(self) -> tuple[float, ...]:
        """Position of the box's low corner [m]."""
        return tuple(float(o) for o in self.origin) if self.origin is not None else (0.0,) * self.dim

    @property
    def control_dt(self) -> float:
        """Duration of one control step [s]."""
        return self.dt * self.substeps

    @property
    def fan_count(self) -> int:
        """Number of fans (rows of the action)."""
        return len(self.fans)

    @property
    def action_width(self) -> int:
        """Columns of one fan's action row: center, direction, strength, radius, mix, emit."""
        return 2 * self.dim + 3 + self.smoke_channels

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype of every tensor of this simulator."""
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass(frozen=True)
class GasState:
    """State of the gas grid.

    Velocities live on the faces of the cells (a staggered MAC grid): component d of
    ``velocity[I]`` is the flow through the face of cell I on its low side along axis d,
    at position ``(I + 0.5 - 0.5·e_d) · h``. Faces on the box walls and beside solid
    cells are zero. `GasSimulator.cell_velocity` averages them to cell centers.

    Attributes:
        velocity: Face velocities [m/s], shape (*resolution, dim).
        smoke: Scalars carried by the air (density, temperature, ...) at cell centers,
            shape (*resolution, smoke_channels).
        pressure: Projection potential φ = dt·p/ρ [m²/s] at cell centers, shape
            (*resolution); kept to warm-start the next solve.
        time: Simulated time [s], shape ().
    """

    velocity: torch.Tensor
    smoke: torch.Tensor
    pressure: torch.Tensor
    time: torch.Tensor
