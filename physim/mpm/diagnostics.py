"""Physical diagnostics of a state, in torch: momentum, energies, fluid pressure; a pile's flank angle.

Used by the physics tests and handy for losses and plots; all differentiable but `pile_angle`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physim.mpm.materials import Elastic, NewtonianFluid, NonNewtonianFluid, lame
from physim.mpm.state import State

__all__ = ["cone_angle", "elastic_energy", "kinetic_energy", "linear_momentum", "pile_angle", "pressure"]


def linear_momentum(sim, state: State) -> torch.Tensor:
    """Total linear momentum Σ m v [kg·m/s], shape (d,)."""
    return (sim.particle_mass()[:, None] * state.v).sum(0)


def kinetic_energy(sim, state: State) -> torch.Tensor:
    """Σ ½ m |v|² [J], shape ()."""
    return 0.5 * (sim.particle_mass() * (state.v**2).sum(1)).sum()


def elastic_energy(sim, state: State) -> torch.Tensor:
    """Σ V₀ ψ(F) [J] over bodies of `Elastic` material, shape ().

    ψ: fixed corotated μ Σ(σ_i − 1)² + λ/2 (J − 1)²; neo-Hookean μ/2 (tr FᵀF − d) − μ log J + λ/2 log² J;
    StVK μ |E|² + λ/2 tr(E)².
    """
    total = torch.zeros((), dtype=state.F.dtype, device=state.F.device)
    d = sim.cfg.dim
    for i, b in enumerate(sim.bodies):
        mat = b.material
        if not isinstance(mat, Elastic):
            continue
        sel = sim.material_id == i
        F = state.F[sel]
        mu, lam = lame(sim.params[f"{b.name}.E"], sim.params[f"{b.name}.nu"])
        J = torch.linalg.det(F)
        if mat.model == "corotated":
            s = torch.linalg.svdvals(F)
            s = torch.where(J[:, None] < 0, s * torch.tensor([1.0] * (d - 1) + [-1.0], dtype=F.dtype), s)
            psi = mu * ((s - 1) ** 2).sum(1) + 0.5 * lam * (J - 1) ** 2
        elif mat.model == "neohookean":
            logJ = torch.log(J)
            psi = 0.5 * mu * ((F**2).sum((1, 2)) - d) - mu * logJ + 0.5 * lam * logJ**2
        else:
            E = 0.5 * (F.transpose(1, 2) @ F - torch.eye(d, dtype=F.dtype))
            tr = E.diagonal(dim1=1, dim2=2).sum(1)
            psi = mu * (E**2).sum((1, 2)) + 0.5 * lam * tr**2
        total = total + (sim.particle_volume[sel] * psi).sum()
    return total


def pressure(sim, state: State) -> torch.Tensor:
    """Pressure p = (K/γ)(J^−γ − 1) [Pa] of each fluid particle (NaN for other materials), shape (N,)."""
    J = torch.linalg.det(state.F)
    out = torch.full_like(J, float("nan"))
    for i, b in enumerate(sim.bodies):
        if isinstance(b.material, (NewtonianFluid, NonNewtonianFluid)):
            sel = sim.material_id == i
            K, g = sim.params[f"{b.name}.bulk_modulus"], b.material.gamma
            out = torch.where(sel, K / g * (J ** (-g) - 1), out)
    return out


def pile_angle(x, y, dx: float, low: float = 0.2, high: float = 0.8) -> float:
    """Mean flank angle [degrees] of a 2D pile's free surface, both flanks (not differentiable).

    The surface is the highest particle of each column of width ``dx``; a line is fitted, on
    each side of the summit, to the columns whose top lies between ``low`` and ``high`` times
    the pile height (the rounded summit and the thin toe are left out).

    Args:
        x: horizontal particle positions [m], shape (N,) (numpy).
        y: particle heights above the floor [m], shape (N,) (numpy).
        dx: column width [m], e.g. the grid spacing.
        low: lower fraction of the height fitted.
        high: upper fraction of the height fitted.
    """
    bins = np.arange(x.min(), x.max() + dx, dx)
    idx = np.digitize(x, bins)
    keys = np.unique(idx)
    cx = np.array([x[idx == b].mean() for b in keys])
    top = np.array([y[idx == b].max() for b in keys])
    h, peak = top.max(), cx[np.argmax(top)]
    angles = []
    for side in (cx < peak, cx > peak):
        sel = side & (top > low * h) & (top < high * h)
        angles.append(math.degrees(math.atan(abs(np.polyfit(cx[sel], top[sel], 1)[0]))))
    return float(np.mean(angles))


def cone_angle(x, y, z, center: tuple[float, float], dx: float, low: float = 0.2, high: float = 0.8,
               method: str = "radial", region=None) -> float:
    """Flank angle [degrees] of a 3D axisymmetric pile around the vertical axis through `center` (not differentiable).

    ``"radial"``: the free surface is the highest particle of each ring of width ``dx`` around
    the axis; a line is fitted to the rings whose top lies between ``low`` and ``high`` times the
    pile height. ``"columns"``: the highest particle of each ``dx`` × ``dx`` column, and a line
    through (distance from the axis, top) of the columns in that band (a direct cone fit,
    weighted by area). Both leave out the rounded summit and the thin toe.

    Args:
        x, z: horizontal particle positions [m], shape (N,) (numpy).
        y: particle heights above the floor [m], shape (N,) (numpy).
        center: (x, z) of the pile's axis [m].
        dx: ring / column width [m], e.g. the grid spacing.
        low: lower fraction of the height fitted.
        high: upper fraction of the height fitted.
        method: ``"radial"`` or ``"columns"``.
        region: optional boolean mask (N,) of the particles to use (e.g. away from symmetry walls).
    """
    if method not in ("radial", "columns"):
        raise ValueError(f"method: got {method!r}, expected 'radial' or 'columns'")
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    if region is not None:
        x, y, z = x[region], y[region], z[region]
    r = np.hypot(x - center[0], z - center[1])
    if method == "radial":
        key = np.floor(r / dx).astype(np.int64)
    else:
        key = np.floor(x / dx).astype(np.int64) * (1 << 32) + np.floor(z / dx).astype(np.int64)
    order = np.lexsort((y, key))  # by key, then height: the last of each key is its top particle
    k = key[order]
    tops = order[np.r_[k[1:] != k[:-1], True]]
    rt, yt = r[tops], y[tops]
    h = yt.max()
    sel = (rt > rt[np.argmax(yt)]) & (yt > low * h) & (yt < high * h)
    if sel.sum() < 2:
        return float("nan")
    return math.degrees(math.atan(-np.polyfit(rt[sel], yt[sel], 1)[0]))
