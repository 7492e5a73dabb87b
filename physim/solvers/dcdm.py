"""DCDM: a deep conjugate direction method for SPD systems on structured grids.

Kaneda, Akar, Chen, Kala, Hyde & Teran, "A Deep Conjugate Direction Method for Iteratively
Solving Linear Systems", ICML 2023. The reference code (ayano721/2023_DCDM) has no license;
this is an independent implementation of the published method in torch:

- **Network.** A fully convolutional network f approximates A⁻¹ "up to a constant": given a
  normalised residual r it proposes a search direction d = f(r). Here f is a U-Net whose
  convolutions are shared by all levels (a learned V-cycle): the number of levels follows the
  grid size, so a network trained on 64² applies unchanged to 128², 256², ….
- **Loss (unsupervised).** ‖r − α A f(r)‖² / ‖r‖² with the optimal scale α = rᵀA f(r) / ‖A f(r)‖²
  factored out, over training vectors r built from Ritz vectors of A (Lanczos), weighted toward
  the low end of the spectrum, where CG struggles.
- **Solver.** Each new direction is A-orthogonalised against the last few ones, then the step
  length is the exact line minimiser of the A-norm error: x ← x + α d, α = dᵀr / dᵀAd.

    net = train_dcdm(DCDMTrainConfig(grid=64))          # minutes on a CPU
    res = dcdm_solve(A, b, net, grid_shape=(128, 128), rtol=1e-6)
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from physim.config import check_choice, check_int, check_positive, check_range
from physim.errors import ConfigError
from physim.solvers._krylov import bdot, finish, prepare, start, verify
from physim.solvers.result import SolveResult

__all__ = ["DCDMNet", "DCDMTrainConfig", "dcdm_solve", "lanczos_ritz", "laplacian_stencil", "train_dcdm"]

log = logging.getLogger(__name__)


def laplacian_stencil(X: torch.Tensor) -> torch.Tensor:
    """−Δ_h applied to grid functions with zero Dirichlet boundary, differentiable (a convolution).

    Args:
        X: Values on the interior nodes, shape (B, s, s) or (B, s, s, s), spacing h = 1/(s+1).

    Returns:
        −Δ_h X, same shape [1/m² × unit of X]; equals `physim.solvers.problems.poisson_matrix` @ X.
    """
    dim = X.ndim - 1
    if dim not in (2, 3):
        raise ConfigError("X", f"tensor of shape {tuple(X.shape)}", "(B, s, s) or (B, s, s, s)")
    s = X.shape[-1]
    inv_h2 = float((s + 1) ** 2)
    if dim == 2:
        k = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]], dtype=X.dtype, device=X.device)
        return torch.nn.functional.conv2d(X[:, None], k[None, None], padding=1)[:, 0] * inv_h2
    k = torch.zeros(3, 3, 3, dtype=X.dtype, device=X.device)
    k[1, 1, 1] = 6.0
    for a, b_, c in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
        k[a, b_, c] = -1.0
    return torch.nn.functional.conv3d(X[:, None], k[None, None], padding=1)[:, 0] * inv_h2


class DCDMNet(nn.Module):
    """U-Net with level-shared convolutions mapping a residual field to a search direction.

    Args:
        dim: 2 or 3 (grid dimension).
        channels: Feature channels.
        min_coarse: Stop coarsening when the grid is smaller than this.
        bias: Give the convolutions biases (off: the network is then positively homogeneous).
    """

    def __init__(self, *, dim: int = 2, channels: int = 16, min_coarse: int = 4, bias: bool = False):
        super().__init__()
        check_choice("dim", dim, (2, 3))
        check_int("channels", channels, 1)
        check_int("min_coarse", min_coarse, 2)
        self.dim, self.channels, self.min_coarse = dim, channels, min_coarse
        self.bias = bias

        def Conv(cin: int, cout: int) -> nn.Module:
            # Without biases (and with PReLU, which is positively homogeneous) f(c r) = c f(r) for c > 0:
            # the scale of the residual cannot matter, as for A⁻¹.
            return (nn.Conv2d if dim == 2 else nn.Conv3d)(cin, cout, 3, padding=1, bias=bias)

        self.lift = Conv(1, channels)
        self.pre = nn.Sequential(Conv(channels, channels), nn.PReLU(channels), Conv(channels, channels))
        self.post = nn.Sequential(Conv(channels, channels), nn.PReLU(channels), Conv(channels, channels))
        self.coarse_in = Conv(channels, channels)
        self.proj = Conv(channels, 1)

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pre(x)
        size = x.shape[2:]
        if min(size) >= 2 * self.min_coarse:
            pool = nn.functional.avg_pool2d if self.dim == 2 else nn.functional.avg_pool3d
            c = self._level(self.coarse_in(pool(x, 2, ceil_mode=True)))
            up = nn.functional.interpolate(c, size=size, mode="bilinear" if self.dim == 2 else "trilinear",
                                           align_corners=False)
            x = x + up
        return x + self.post(x)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Search directions for residual fields r of shape (B, s, s) (or (B, s, s, s)); same shape out."""
        if r.ndim != self.dim + 1:
            raise ConfigError("r", f"tensor of shape {tuple(r.shape)}", f"(B, {', '.join(['s'] * self.dim)})")
        y = self.proj(self._level(self.lift(r[:, None])))
        return y[:, 0]


def lanczos_ritz(apply_A, n: int, steps: int, *, dtype=torch.float64, device=None, seed: int = 0):
    """Ritz values and vectors of an SPD operator from `steps` Lanczos iterations (full reorthogonalisation).

    Args:
        apply_A: Map (1, n) → (1, n).
        n: Operator size.
        steps: Lanczos iterations (number of Ritz pairs).

    Returns:
        (values (steps,), vectors (steps, n)) sorted by increasing value.
    """
    check_int("steps", steps, 1, n)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    q = q / torch.linalg.vector_norm(q)
    Q = torch.zeros(steps, n, dtype=dtype, device=device)
    alpha = torch.zeros(steps, dtype=dtype, device=device)
    beta = torch.zeros(steps, dtype=dtype, device=device)
    m = steps
    for j in range(steps):
        Q[j] = q
        w = apply_A(q[None])[0]
        alpha[j] = torch.dot(q, w)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        bj = torch.linalg.vector_norm(w)
        if j + 1 < steps:
            if bj <= 1e-12 * alpha[: j + 1].abs().max():
                m = j + 1
                break
            beta[j] = bj
            q = w / bj
    T = torch.diag(alpha[:m]) + torch.diag(beta[: m - 1], 1) + torch.diag(beta[: m - 1], -1)
    vals, vecs = torch.linalg.eigh(T)
    return vals, vecs.T @ Q[:m]


@dataclass(frozen=True, kw_only=True)
class DCDMTrainConfig:
    """Training of the DCDM network on the 2-D (or 3-D) Poisson matrix."""

    grid: int = 64
    """Interior grid points per side of the training problem."""
    dim: int = 2
    """Grid dimension (2 or 3)."""
    channels: int = 16
    """Feature channels of the network."""
    ritz: int = 400
    """Lanczos iterations (Ritz vectors) used to build training vectors."""
    low_weight: float = 9.0
    """Weight of the lower half of the spectrum in the training vectors (the paper favours it)."""
    samples: int = 2000
    """Training vectors."""
    batch_size: int = 16
    """Vectors per step."""
    steps: int = 600
    """Optimiser steps."""
    lr: float = 2e-3
    """Adam learning rate (cosine decay to 1 % of it)."""
    seed: int = 0
    """Seed of the data and the initial weights."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_int("grid", self.grid, 8)
        check_choice("dim", self.dim, (2, 3))
        check_int("channels", self.channels, 1)
        check_int("ritz", self.ritz, 2)
        check_positive("low_weight", self.low_weight)
        check_int("samples", self.samples, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("steps", self.steps, 1)
        check_positive("lr", self.lr)
        check_int("seed", self.seed, 0)
        if self.ritz > self.grid**self.dim:
            raise ConfigError("ritz", self.ritz, f"at most the number of unknowns, {self.grid ** self.dim}")


def dcdm_loss(net: DCDMNet, R: torch.Tensor) -> torch.Tensor:
    """Mean of ‖r − α A f(r)‖² / ‖r‖² with α optimal per sample (the network is only defined up to scale)."""
    Y = net(R)
    AY = laplacian_stencil(Y)
    dims = tuple(range(1, R.ndim))
    alpha = (R * AY).sum(dims) / (AY * AY).sum(dims).clamp_min(1e-30)
    diff = R - alpha.reshape(-1, *([1] * (R.ndim - 1))) * AY
    return ((diff * diff).sum(dims) / (R * R).sum(dims)).mean()


def train_dcdm(cfg: DCDMTrainConfig) -> tuple[DCDMNet, dict]:
    """Train a `DCDMNet` on the Poisson matrix of `cfg.grid`; returns the network and a log.

    The log has the loss per step (``"loss"``), the data-set build time and the training time [s].
    """
    torch.manual_seed(cfg.seed)
    dtype = torch.float32
    shape = (cfg.grid,) * cfg.dim
    n = math.prod(shape)
    t0 = time.perf_counter()
    vals, vecs = lanczos_ritz(lambda X: laplacian_stencil(X.reshape(-1, *shape)).reshape(-1, n), n, cfg.ritz,
                              seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    weights = torch.ones(vecs.shape[0], dtype=torch.float64)
    weights[: vecs.shape[0] // 2] = cfg.low_weight
    coef = torch.randn(cfg.samples, vecs.shape[0], generator=gen, dtype=torch.float64) * weights
    data = coef @ vecs
    data = (data / torch.linalg.vector_norm(data, dim=1, keepdim=True)).to(dtype).reshape(cfg.samples, *shape)
    build = time.perf_counter() - t0
    net = DCDMNet(dim=cfg.dim, channels=cfg.channels)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.01)
    losses: list[float] = []
    steps = range(cfg.steps)
    if cfg.progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="DCDM training", unit="step")
    t1 = time.perf_counter()
    for _ in steps:
        idx = torch.randint(0, cfg.samples, (cfg.batch_size,), generator=gen)
        loss = dcdm_loss(net, data[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    net.eval()
    return net, {"loss": losses, "data_seconds": build, "train_seconds": time.perf_counter() - t1,
                 "ritz_values": vals.tolist()}


def dcdm_solve(
    A: object,
    b: object,
    net: DCDMNet,
    *,
    grid_shape: tuple[int, ...],
    x0: object = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    orthogonalize: int = 2,
    raise_on_fail: bool = False,
) -> SolveResult:
    """Solve SPD A x = b with network-proposed, A-orthogonalised search directions (batched).

    Args:
        A: SPD operator on grid functions flattened in C order (any form `physim.solvers.cg` accepts).
        b: Right-hand side(s), shape (n,) or (B, n), n = prod(grid_shape).
        net: Trained `DCDMNet` (run in its own dtype and device).
        grid_shape: Grid of the unknowns, (s, s) or (s, s, s).
        x0: Initial guess (default zeros).
        rtol, atol: Stop when ‖b − A x‖ ≤ max(rtol·‖b‖, atol).
        maxiter: Iteration limit (default n).
        orthogonalize: Number of previous directions each new one is A-orthogonalised against.
        raise_on_fail: Raise `NotConverged` instead of returning ``converged=False``.

    Returns:
        `SolveResult`; iterations count network evaluations (= products with A);
        ``info["fallbacks"]`` counts directions replaced by the residual because they were degenerate.
    """
    check_int("orthogonalize", orthogonalize, 0)
    check_range("rtol", rtol, 0.0, 1.0)
    n_grid = math.prod(grid_shape)
    P = prepare("dcdm", A, b, x0=x0, M=None, rtol=rtol, atol=atol, maxiter=maxiter or n_grid,
                raise_on_fail=raise_on_fail, symmetric=True)
    if P.b.shape[1] != n_grid:
        raise ConfigError("grid_shape", grid_shape, f"a grid with {P.b.shape[1]} points to match b")
    if len(grid_shape) != net.dim:
        raise ConfigError("grid_shape", grid_shape, f"a {net.dim}-D grid for this network")
    p0 = next(net.parameters())
    X, R, rn, history, its, active = start(P)
    dirs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (p, A p, pᵀ A p)
    k, fallbacks = 0, 0
    with torch.no_grad():
        while bool(active.any()) and k < P.maxiter:
            Rn = R / rn.clamp_min(torch.finfo(R.dtype).tiny)[:, None]
            D = net(Rn.reshape(-1, *grid_shape).to(device=p0.device, dtype=p0.dtype))
            D = D.reshape(R.shape[0], -1).to(device=R.device, dtype=R.dtype)
            AD = P.A(D)
            for Pj, APj, pAp in dirs[-orthogonalize:] if orthogonalize else []:
                c = bdot(D, APj) / pAp
                D = D - c[:, None] * Pj
                AD = AD - c[:, None] * APj
            dAd = bdot(D, AD)
            # A direction the network got (numerically) A-orthogonal to the search space would stall:
            # fall back to the residual, the steepest-descent direction, for those systems.
            bad = active & (dAd <= 1e-12 * torch.linalg.vector_norm(D, dim=-1) * torch.linalg.vector_norm(AD, dim=-1))
            if bool(bad.any()):
                fallbacks += int(bad.sum())
                D = torch.where(bad[:, None], R, D)
                AD = P.A(D)
                dAd = bdot(D, AD)
            ok = active & (dAd > 0)
            alpha = torch.where(ok, bdot(D, R) / torch.where(ok, dAd, torch.ones_like(dAd)), torch.zeros_like(dAd))
            X = X + alpha[:, None] * D
            R = R - alpha[:, None] * AD
            dirs.append((D, AD, torch.where(dAd > 0, dAd, torch.ones_like(dAd))))
            dirs = dirs[-max(orthogonalize, 1):]
            its += active
            k += 1
            rn = torch.where(active, torch.linalg.vector_norm(R, dim=-1), rn)
            history.append(rn)
            active = active & (rn > P.tol)
        _, rn, _ = verify(P, X, history)
    return finish(P, X, history, its, rn, {"matvecs": k + 1 + fallbacks, "fallbacks": fallbacks})

