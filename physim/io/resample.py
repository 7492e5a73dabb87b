"""Smooth resampling of knot trajectories to a controller rate (scipy B-splines).

The optimised tool positions at the simulator's control steps (the knots) are joined by
an interpolating spline that passes through every knot exactly:

- ``quintic``: degree 5, continuous up to the 4th derivative (continuous jerk);
- ``cubic``: degree 3, continuous acceleration (jerk jumps at the knots).

With ``at_rest`` the spline starts and ends with zero velocity and acceleration (cubic:
zero velocity), as controllers such as libfranka require; otherwise the higher
derivatives vanish at the ends (a "natural" spline). Uniformly retiming by a factor s
(``time_scale``) stretches the knot times: positions are unchanged, velocities divide by
s, accelerations by s², jerks by s³.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from physim.errors import ConfigError

__all__ = ["Resampled", "fit_spline", "min_time_scale", "peak_derivatives", "resample"]


@dataclass(frozen=True)
class Resampled:
    """A trajectory sampled at a controller rate.

    Attributes:
        times: Sample times [s], shape (n,), j / rate.
        positions, velocities, accelerations, jerks: Shape (n, axes), SI units.
        duration: Time of the last knot [s]; samples after it hold the final position.
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    jerks: np.ndarray
    duration: float


def fit_spline(times: np.ndarray, positions: np.ndarray, *, kind: str = "quintic", at_rest: bool = True):
    """The interpolating spline through the knots, as a scipy ``BSpline`` of shape (axes,) values.

    Args:
        times: Knot times [s], shape (k,), strictly increasing.
        positions: Knot positions, shape (k, axes).
        kind: ``"quintic"`` or ``"cubic"``.
        at_rest: Zero velocity and acceleration at both ends (else zero higher derivatives).
    """
    from scipy.interpolate import make_interp_spline

    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(positions, dtype=np.float64)
    if kind not in ("quintic", "cubic"):
        raise ConfigError("interpolation", kind, "'quintic' or 'cubic'")
    if t.ndim != 1 or t.size < 2 or not np.all(np.diff(t) > 0):
        raise ConfigError("times", f"shape {t.shape}", "at least 2 strictly increasing knot times")
    if y.ndim != 2 or y.shape[0] != t.size or not np.isfinite(y).all():
        raise ConfigError("positions", f"shape {y.shape}", f"finite values of shape ({t.size}, axes)")
    if kind == "quintic":
        orders = (1, 2) if at_rest else (3, 4)
        k = 5
    else:
        orders = (1,) if at_rest else (2,)
        k = 3
    zeros = np.zeros(y.shape[1])
    bc = ([(o, zeros) for o in orders], [(o, zeros) for o in orders])
    return make_interp_spline(t, y, k=k, bc_type=bc)


def _evaluate(spline, t: np.ndarray, duration: float) -> tuple[np.ndarray, ...]:
    inside = np.minimum(t, duration)
    pos = spline(inside)
    held = (t > duration)[:, None]
    vel, acc, jerk = (np.where(held, 0.0, spline(inside, nu)) for nu in (1, 2, 3))
    return pos, vel, acc, jerk


def resample(times: np.ndarray, positions: np.ndarray, rate_hz: float, *, kind: str = "quintic",
             at_rest: bool = True, time_scale: float = 1.0) -> Resampled:
    """Resample knots to `rate_hz` through the interpolating spline, retimed by `time_scale`.

    Samples are at j / rate for j = 0, 1, ... up to the first tick at or after the last
    (retimed) knot; a tick past the last knot holds the final position at rest.

    Raises:
        ConfigError: A rate ≤ 0, a time scale ≤ 0, or malformed knots.
    """
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) or not math.isfinite(rate_hz) or rate_hz <= 0:
        raise ConfigError("rate", rate_hz, "a controller rate > 0 Hz")
    if not isinstance(time_scale, (int, float)) or not math.isfinite(time_scale) or time_scale <= 0:
        raise ConfigError("time_scale", time_scale, "a factor > 0")
    t = np.asarray(times, dtype=np.float64) * time_scale
    spline = fit_spline(t, positions, kind=kind, at_rest=at_rest)
    duration = float(t[-1])
    n = math.ceil(duration * rate_hz - 1e-9)
    ticks = np.arange(n + 1, dtype=np.float64) / rate_hz
    pos, vel, acc, jerk = _evaluate(spline, ticks, duration)
    return Resampled(ticks, pos, vel, acc, jerk, duration)


def peak_derivatives(times: np.ndarray, positions: np.ndarray, *, kind: str = "quintic", at_rest: bool = True,
                     axes: list[list[int]], per_interval: int = 32) -> list[tuple[float, float, float]]:
    """Peak norms of velocity, acceleration and jerk of each axis group, on a dense grid of the spline."""
    t = np.asarray(times, dtype=np.float64)
    spline = fit_spline(t, positions, kind=kind, at_rest=at_rest)
    grid = np.unique(np.concatenate([np.linspace(a, b, per_interval + 1) for a, b in itertools.pairwise(t)]))
    out = []
    derivs = [spline(grid, nu) for nu in (1, 2, 3)]
    for group in axes:
        out.append(tuple(float(np.linalg.norm(d[:, group], axis=1).max()) for d in derivs))
    return out


def min_time_scale(peaks: list[tuple[float, float, float]], limits: list[tuple[float | None, ...]]) -> float:
    """Smallest uniform slow-down s ≥ 1 bringing every peak within its limit.

    Velocity scales as 1/s, acceleration as 1/s², jerk as 1/s³, so s is the largest of
    v/v_max, √(a/a_max), ∛(j/j_max) over the axis groups.
    """
    s = 1.0
    for (v, a, j), (vl, al, jl) in zip(peaks, limits):
        for value, limit, power in ((v, vl, 1), (a, al, 2), (j, jl, 3)):
            if limit is not None and value > limit:
                s = max(s, (value / limit) ** (1.0 / power))
    return s
