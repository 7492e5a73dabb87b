"""Model problems for the solvers: Gaussian random fields, Poisson and Darcy-flow matrices.

The same assembly serves the data generators (`physim data darcy|poisson`), DCDM training, the
benchmarks and the tests:

- `gaussian_random_field`: the spectral GRF of the FNO/SKR data sets, covariance
  σ²(4π²|k|² + τ²)^(−α), zero mean, on a periodic s × s grid;
- `poisson_matrix`: the 5-point (2-D) or 7-point (3-D) Laplacian −Δ on the s^d interior nodes of
  the unit square/cube, homogeneous Dirichlet boundary, spacing h = 1/(s+1), scaled by 1/h²;
- `darcy_matrix`: −∇·(a∇u) with cell coefficients a [any unit of conductivity], two-point flux
  with harmonic face means, same grid and boundary. Symmetric positive definite.
"""

from __future__ import annotations

import math

import numpy as np

from physim.config import check_choice, check_int, check_positive
from physim.errors import ConfigError

__all__ = ["darcy_coefficient", "darcy_matrix", "gaussian_random_field", "poisson_matrix"]


def gaussian_random_field(
    n_samples: int, s: int, *, alpha: float = 2.5, tau: float = 7.0, sigma: float | None = None,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """Samples of a zero-mean periodic Gaussian random field on an s × s grid.

    Spectral recipe of the FNO Darcy data (and SKR's generator): Fourier coefficients with
    standard deviation s²·√2·σ·(4π²|k|² + τ²)^(−α/2), k = 0 mode removed, inverse FFT, real part.

    Args:
        n_samples: Number of fields N.
        s: Grid points per side.
        alpha: Smoothness exponent (larger: smoother).
        tau: Inverse length scale.
        sigma: Amplitude; default τ^(α − 1) (so the field has O(1) variance).
        rng: numpy Generator or seed.

    Returns:
        float64 array of shape (N, s, s).
    """
    check_int("n_samples", n_samples, 1)
    check_int("s", s, 2)
    check_positive("alpha", alpha)
    check_positive("tau", tau)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if sigma is None:
        sigma = tau ** (0.5 * (2 * alpha - 2))
    k = np.fft.fftfreq(s, d=1.0 / s)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    sqrt_eig = s * s * math.sqrt(2.0) * sigma * (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    coef = gen.standard_normal((n_samples, s, s)) + 1j * gen.standard_normal((n_samples, s, s))
    return np.fft.ifft2(coef * sqrt_eig, axes=(-2, -1)).real


def darcy_coefficient(
    field: np.ndarray, *, kind: str = "lognormal", high: float = 12.0, low: float = 3.0
) -> np.ndarray:
    """Turn a GRF into a positive permeability field.

    Args:
        field: GRF samples, any shape.
        kind: ``"lognormal"`` (a = exp(field), SKR's Darcy) or ``"threshold"`` (a = high where
            field ≥ 0 else low, the FNO Darcy benchmark).
        high, low: The two values of the threshold coefficient.
    """
    check_choice("kind", kind, ("lognormal", "threshold"))
    if kind == "lognormal":
        return np.exp(field)
    check_positive("high", high)
    check_positive("low", low)
    return np.where(field >= 0, high, low)


def _grid_index(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape)).reshape(shape)


def poisson_matrix(s: int, *, dim: int = 2):
    """Dirichlet Laplacian −Δ_h on the s^dim interior nodes of the unit square (dim 2) or cube (dim 3).

    Returns:
        scipy CSR matrix of shape (s^dim, s^dim), SPD, entries [1/m²].
    """
    import scipy.sparse as sp

    check_int("s", s, 1)
    check_choice("dim", dim, (2, 3))
    h = 1.0 / (s + 1)
    T = sp.diags([-np.ones(s - 1), 2 * np.ones(s), -np.ones(s - 1)], [-1, 0, 1], shape=(s, s), format="csr")
    I = sp.identity(s, format="csr")
    if dim == 2:
        L = sp.kron(I, T) + sp.kron(T, I)
    else:
        L = sp.kron(sp.kron(I, I), T) + sp.kron(sp.kron(I, T), I) + sp.kron(sp.kron(T, I), I)
    return (L / h**2).tocsr()


def darcy_matrix(a: np.ndarray):
    """Matrix of −∇·(a∇u) = f on the unit square, u = 0 on the boundary (two-point flux, harmonic means).

    Args:
        a: Positive cell coefficients, shape (s, s): one value per interior node's control volume.

    Returns:
        scipy CSR matrix of shape (s², s²), SPD. Node (i, j) is unknown i·s + j.
    """
    import scipy.sparse as sp

    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ConfigError("a", f"array of shape {a.shape}", "a square (s, s) coefficient field")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ConfigError("a", "field with non-positive or non-finite values", "a positive, finite coefficient")
    s = a.shape[0]
    h = 1.0 / (s + 1)
    ap = np.pad(a, 1, mode="edge")  # boundary faces take the adjacent cell's value
    c = ap[1:-1, 1:-1]

    def harmonic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 2 * x * y / (x + y)

    east, west = harmonic(c, ap[2:, 1:-1]), harmonic(c, ap[:-2, 1:-1])
    north, south = harmonic(c, ap[1:-1, 2:]), harmonic(c, ap[1:-1, :-2])
    idx = _grid_index((s, s))
    rows = [idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    cols = [idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    vals = [(east + west + north + south).ravel(), -east[:-1, :].ravel(), -west[1:, :].ravel(),
            -north[:, :-1].ravel(), -south[:, 1:].ravel()]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(s * s, s * s))
    return A / h**2
