"""Warp types of one kernel variant: spatial dimension and float precision.

Kernel factories (``*_kernels.py``) take a `KernelTypes` and build concrete Warp
functions for it; Warp compiles each variant once and caches it under ``~/.cache``.
This module imports no backend: the Warp types are created on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["KernelTypes", "kernel_types"]


@dataclass(frozen=True)
class KernelTypes:
    """Warp scalar, vector and matrix types of one (dim, dtype) variant.

    Attributes:
        dim: Spatial dimension, 2 or 3.
        float: Warp scalar type (``wp.float32`` or ``wp.float64``).
        vec: Vector of `dim` floats.
        mat: `dim` × `dim` matrix.
        vecg: Grid cell record: momentum (`dim` floats) then mass.
        vec3: Vector of 3 floats (collider data are always 3D).
        mat3: 3 × 3 matrix.
        quat: Quaternion of this precision.
        torch_dtype: Matching torch dtype.
        tol: Relative gap below which two singular values count as coincident.
    """

    dim: int
    float: Any
    vec: Any
    mat: Any
    vecg: Any
    vec3: Any
    mat3: Any
    quat: Any
    torch_dtype: torch.dtype
    tol: float


@functools.cache
def kernel_types(dim: int, dtype: torch.dtype) -> KernelTypes:
    """The `KernelTypes` of `dim` (2 or 3) and torch `dtype` (float32 or float64)."""
    from physim.runtime import init_warp

    wp = init_warp()
    f = {torch.float32: wp.float32, torch.float64: wp.float64}[dtype]
    # Divided differences (h_i - h_j)/(s_i - s_j) lose digits as s_i -> s_j; below this relative
    # gap the SVD adjoint switches to their analytic limit (about sqrt of machine epsilon).
    tol = 1e-3 if dtype == torch.float32 else 1e-7
    return KernelTypes(
        dim=dim,
        float=f,
        vec=wp.types.vector(dim, f),
        mat=wp.types.matrix((dim, dim), f),
        vecg=wp.types.vector(dim + 1, f),
        vec3=wp.types.vector(3, f),
        mat3=wp.types.matrix((3, 3), f),
        quat=wp.types.quaternion(f),
        torch_dtype=dtype,
        tol=tol,
    )
