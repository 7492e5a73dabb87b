"""Rigid bodies made of particles, kept rigid by shape matching.

The particles of a rigid body take part in the grid transfers like any material but
carry no stress. After every grid-to-particle transfer the body is projected back to
a rigid motion (Müller et al. 2005's shape matching, as in FluidLab): with masses m,
rest offsets r₀ from the initial centre of mass, current centre c and
A = Σ m (x − c) r₀ᵀ,

    R = polar(A),   x ← c + R r₀,   v ← v_c + ω × (x − c),   ω = I⁻¹ L,

where v_c, L and I are the body's mean velocity, angular momentum about c and
inertia tensor: linear and angular momentum are kept, deformation is removed. The
polar rotation is differentiated with physim's finite SVD adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from physim.mpm.materials.base import KIND_RIGID, Material

__all__ = ["Rigid"]


@dataclass(frozen=True, kw_only=True)
class Rigid(Material):
    """A rigid body (a floating cube, a boat); only its density matters.

    Example::

        Rigid(density=500.0)    # floats on water of density 1000
    """

    kind: ClassVar[int] = KIND_RIGID
    type_name: ClassVar[str] = "rigid"
