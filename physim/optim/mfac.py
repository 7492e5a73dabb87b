"""M-FAC: preconditioned SGD with a sliding-window inverse empirical Fisher.

The last m gradients G = [g_1 … g_m] (m × d) define the damped empirical Fisher

    F = λ I + (1/m) Gᵀ G,

whose inverse applied to a vector follows from the Woodbury identity with only the
m × m Gram matrix K = G Gᵀ:

    F⁻¹ v = (1/λ) (v − Gᵀ (m λ I + K)⁻¹ G v).

Replacing the oldest gradient updates one row and column of K in O(d m) and refactors
it in O(m³); the product costs O(d m + m²). This is the optimisation-setting algorithm
of Frantar et al. (M-FAC, NeurIPS 2021) in its dense ring-buffer form, meant for small
and medium models (d·m floats of memory; m ≤ ~64). Written from the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from physim.errors import ConfigError

__all__ = ["MFAC", "SlidingWindowFisher"]


class SlidingWindowFisher:
    """Ring buffer of the last m gradients and inverse-Fisher-vector products.

    Args:
        dim: Number of parameters d.
        ngrads: Window length m ≥ 1.
        damp: Damping λ > 0.
        device, dtype: Storage of the buffer.
    """

    def __init__(self, dim: int, ngrads: int, damp: float, *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.G = torch.zeros((ngrads, dim), device=device, dtype=dtype)
        self.K = torch.zeros((ngrads, ngrads), device=device, dtype=torch.float64)
        self.m = ngrads
        self.damp = float(damp)
        self.count = 0  # gradients seen
        self._chol: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """Gradients currently in the window."""
        return min(self.count, self.m)

    def add(self, g: torch.Tensor) -> None:
        """Insert gradient `g` (shape (d,)), replacing the oldest once the window is full."""
        j = self.count % self.m
        self.G[j] = g.to(self.G.dtype)
        row = (self.G @ self.G[j]).to(torch.float64)
        self.K[j, :] = row
        self.K[:, j] = row
        self.count += 1
        n = self.size
        self._chol = torch.linalg.cholesky(n * self.damp * torch.eye(n, dtype=torch.float64, device=self.K.device)
                                           + self.K[:n, :n])

    def inverse_mv(self, v: torch.Tensor) -> torch.Tensor:
        """F⁻¹ v for F = λI + (1/n) Σ g gᵀ over the n gradients in the window."""
        if self.size == 0:
            return v / self.damp
        n = self.size
        Gn = self.G[:n]
        coef = torch.cholesky_solve((Gn @ v.to(Gn.dtype)).to(torch.float64).unsqueeze(-1), self._chol).squeeze(-1)
        return (v - (coef.to(Gn.dtype) @ Gn).to(v.dtype)) / self.damp


class MFAC(torch.optim.Optimizer):
    """SGD preconditioned by M-FAC's sliding-window inverse empirical Fisher.

    Each step appends the current gradient to the window and moves along
    ``−lr · F⁻¹ g`` (with optional momentum and decoupled weight decay).

    Args:
        params: Parameters (one flat window over all of them).
        lr: Learning rate ≥ 0.
        ngrads: Window length m (memory d·m).
        damp: Damping λ > 0; the step in directions the window has not seen is lr·g/λ,
            so scale λ with the squared gradient norm of the problem.
        momentum: Heavy-ball momentum in [0, 1).
        weight_decay: Decoupled weight decay ≥ 0.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 ngrads: int = 32, damp: float = 1e-4, momentum: float = 0.0, weight_decay: float = 0.0):
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ConfigError("lr", lr, "a finite number >= 0")
        if isinstance(ngrads, bool) or not isinstance(ngrads, int) or ngrads < 1:
            raise ConfigError("ngrads", ngrads, "an integer >= 1 (gradients in the sliding window)")
        if not isinstance(damp, (int, float)) or not math.isfinite(damp) or damp <= 0:
            raise ConfigError("damp", damp, "a finite damping > 0")
        if not isinstance(momentum, (int, float)) or not (0.0 <= momentum < 1.0):
            raise ConfigError("momentum", momentum, "a number in [0, 1)")
        if not isinstance(weight_decay, (int, float)) or not math.isfinite(weight_decay) or weight_decay < 0:
            raise ConfigError("weight_decay", weight_decay, "a finite number >= 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self._plist = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        d = sum(p.numel() for p in self._plist)
        p0 = self._plist[0]
        self.fisher = SlidingWindowFisher(d, ngrads, damp, device=p0.device, dtype=p0.dtype)
        self._buf: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure=None):
        """One preconditioned step; `closure` (optional) re-evaluates the loss with backward."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._plist]
        g = torch.cat([x.reshape(-1) for x in grads])
        self.fisher.add(g)
        direction = self.fisher.inverse_mv(g)
        group = self.param_groups[0]
        if group["momentum"] > 0:
            self._buf = direction if self._buf is None else self._buf.mul_(group["momentum"]).add_(direction)
            direction = self._buf
        offset = 0
        for grp in self.param_groups:
            for p in grp["params"]:
                if not p.requires_grad:
                    continue
                n = p.numel()
                if grp["weight_decay"] > 0:
                    p.mul_(1.0 - grp["lr"] * grp["weight_decay"])
                p.add_(direction[offset : offset + n].view_as(p), alpha=-grp["lr"])
                offset += n
        return loss
