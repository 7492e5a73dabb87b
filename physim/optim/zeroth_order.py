"""Zeroth-order optimizers: MeZO, Sparse MeZO, SPSA, and a functional SPSA gradient estimator.

They use loss values only, so they train any ``nn.Module`` and optimise objectives
with no gradient at all (a success rate, a count, a simulator run without a tape).

MeZO (Malladi et al., 2023) is ZO-SGD made in-place: for a random direction z,

    g = (L(θ + εz) − L(θ − εz)) / (2ε),        θ ← θ − lr · (g z + λ θ),

where z is never stored: it is regenerated from a seed, parameter by parameter and in
chunks, for the perturbations and again for the update, so the optimizer holds no
tensor state and training needs the memory of inference plus one chunk of noise.
Sparse MeZO (Liu et al., 2024) perturbs only the entries whose magnitude is below a
per-tensor quantile. Reimplemented from the papers; no code copied.

Example::

    opt = MeZO(model.parameters(), lr=1e-3, eps=1e-3)
    for x, y in loader:
        opt.step(lambda: loss_fn(model(x), y))    # the closure returns the loss; no backward
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from physim.errors import ConfigError

__all__ = ["SPSA", "MeZO", "SparseMeZO", "spsa_gradient"]

_DISTRIBUTIONS = ("gaussian", "rademacher")
# Noise is drawn in chunks of this many entries so the extra memory is bounded by the
# chunk, not by the largest parameter tensor (the reference implementation goes row-wise).
_CHUNK = 1 << 17


def _check_common(lr: float, eps: float, weight_decay: float, n_perturbations: int, distribution: str) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ConfigError("lr", lr, "a finite number >= 0")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ConfigError("eps", eps, "a finite perturbation scale > 0")
    if not isinstance(weight_decay, (int, float)) or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ConfigError("weight_decay", weight_decay, "a finite number >= 0")
    if isinstance(n_perturbations, bool) or not isinstance(n_perturbations, int) or n_perturbations < 1:
        raise ConfigError("n_perturbations", n_perturbations, "an integer >= 1 (random directions per step)")
    if distribution not in _DISTRIBUTIONS:
        raise ConfigError("distribution", distribution, "one of " + ", ".join(map(repr, _DISTRIBUTIONS)))


def _noise(shape: tuple[int, ...] | int, gen: torch.Generator, like: torch.Tensor, distribution: str) -> torch.Tensor:
    if distribution == "gaussian":
        return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)
    # Rademacher ±1: the SPSA choice (bounded, E[zzᵀ] = I).
    return torch.randint(0, 2, (shape,) if isinstance(shape, int) else shape, generator=gen, device=like.device).to(
        like.dtype
    ).mul_(2).sub_(1)


def _loss_value(out: Any, where: str) -> float:
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise ValueError(f"{where}: the closure must return a scalar loss, got shape {tuple(out.shape)}")
        out = out.item()
    try:
        return float(out)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: the closure must return a number or a scalar tensor, got {type(out).__name__}") \
            from None


class MeZO(torch.optim.Optimizer):
    """Memory-efficient zeroth-order SGD (MeZO) with the seed trick.

    Args:
        params: Parameters or parameter groups (any ``nn.Module``'s ``parameters()``).
        lr: Learning rate, ≥ 0.
        eps: Perturbation scale ε > 0 (must dominate the noise of the loss, e.g. of
            kernel atomics in a simulator).
        weight_decay: Decoupled L2 decay λ ≥ 0.
        n_perturbations: Random directions averaged per step (2 loss evaluations each).
        seed: Seed of the direction stream; a run is reproducible from it.
        distribution: ``"gaussian"`` (MeZO) or ``"rademacher"`` (SPSA).

    ``step(closure)`` calls ``closure()`` 2·n_perturbations times under ``torch.no_grad``;
    the closure returns the loss (tensor, float, or anything ``float()`` accepts) and
    must not call ``backward``. It returns the mean of the evaluated losses.
    After a step, ``last_projected_grads`` holds the n directional derivatives g.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        n_perturbations: int = 1,
        seed: int = 0,
        distribution: str = "gaussian",
    ):
        _check_common(lr, eps, weight_decay, n_perturbations, distribution)
        defaults = {"lr": lr, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        # One ε for all groups: the directional derivative is estimated along one joint direction.
        self.eps = float(eps)
        self.n_perturbations = n_perturbations
        self.distribution = distribution
        self._seed_stream = torch.Generator().manual_seed(int(seed))
        self._gens: dict[torch.device, torch.Generator] = {}
        self._masks: dict[int, torch.Tensor] | None = None
        self.last_projected_grads: list[float] = []

    # -- the seed trick ------------------------------------------------------------------
    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    yield group, p

    def _apply(self, seed: int, coef: Callable[[dict[str, Any]], float]) -> None:
        """θ += coef(group) · (z ⊙ mask), regenerating z from `seed` chunk by chunk in a fixed order."""
        seeded: set[torch.device] = set()
        for group, p in self._params():
            gen = self._gens.get(p.device)
            if gen is None:
                gen = self._gens[p.device] = torch.Generator(device=p.device)
            if p.device not in seeded:  # one stream per device, restarted at every pass
                gen.manual_seed(seed)
                seeded.add(p.device)
            c = coef(group)
            mask = None if self._masks is None else self._masks.get(id(p))
            flat = p.data.view(-1) if p.data.is_contiguous() else None
            if flat is None:  # rare: non-contiguous parameter; draw it whole
                z = _noise(tuple(p.shape), gen, p.data, self.distribution)
                if mask is not None:
                    z.mul_(mask)
                p.data.add_(z, alpha=c)
                continue
            mflat = None if mask is None else mask.view(-1)
            for start in range(0, flat.numel(), _CHUNK):
                stop = min(start + _CHUNK, flat.numel())
                z = _noise(stop - start, gen, flat, self.distribution)
                if mflat is not None:
                    z.mul_(mflat[start:stop])
                flat[start:stop].add_(z, alpha=c)

    def _prepare_masks(self) -> None:
        """Hook for Sparse MeZO: decide which entries are perturbed in this step."""
        self._masks = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> float:  # type: ignore[override]
        """Take one zeroth-order step; see the class docstring for the closure contract."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure returning the loss (no backward)")
        self._prepare_masks()
        seeds = [int(torch.randint(0, 2**62, (1,), generator=self._seed_stream)) for _ in range(self.n_perturbations)]
        projected, losses = [], []
        eps = self.eps
        for seed in seeds:
            self._apply(seed, lambda g: eps)
            lp = _loss_value(closure(), type(self).__name__)
            self._apply(seed, lambda g: -2.0 * eps)
            lm = _loss_value(closure(), type(self).__name__)
            self._apply(seed, lambda g: eps)  # back to θ (up to round-off)
            projected.append((lp - lm) / (2.0 * eps))
            losses += [lp, lm]
        for group, p in self._params():
            if group["weight_decay"] > 0:
                p.data.mul_(1.0 - group["lr"] * group["weight_decay"])
        n = len(seeds)
        for seed, g in zip(seeds, projected):
            self._apply(seed, lambda grp, g=g: -grp["lr"] * g / n)
        self._masks = None
        self.last_projected_grads = projected
        return sum(losses) / len(losses)


class SparseMeZO(MeZO):
    """Sparse MeZO: perturb and update only small-magnitude entries of each tensor.

    Args:
        sparsity: Fraction of each tensor's entries (the largest in magnitude) left
            untouched, in [0, 1). The mask ``|θ| ≤ h`` uses the per-tensor
            (1 − sparsity)-quantile h of ``|θ|``, recomputed from the weights at the start
            of every step (it costs one byte per parameter during the step).
        **kwargs: As `MeZO`.
    """

    def __init__(self, params, lr: float = 1e-3, eps: float = 1e-3, sparsity: float = 0.75, **kwargs: Any):
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not (0.0 <= sparsity < 1.0):
            raise ConfigError("sparsity", sparsity, "a fraction in [0, 1) of entries left unperturbed")
        super().__init__(params, lr=lr, eps=eps, **kwargs)
        self.sparsity = float(sparsity)

    def _prepare_masks(self) -> None:
        masks = {}
        for _, p in self._params():
            a = p.data.abs().reshape(-1)
            k = max(1, math.ceil((1.0 - self.sparsity) * a.numel()))
            h = a.kthvalue(k).values
            masks[id(p)] = (p.data.abs() <= h).to(p.dtype)
        self._masks = masks


class SPSA(MeZO):
    """SPSA: MeZO's estimator with Rademacher directions and several directions per step.

    Same arguments as `MeZO`; the defaults differ (``distribution="rademacher"``,
    ``n_perturbations=4``).
    """

    def __init__(self, params, lr: float = 1e-3, eps: float = 1e-3, n_perturbations: int = 4, **kwargs: Any):
        kwargs.setdefault("distribution", "rademacher")
        super().__init__(params, lr=lr, eps=eps, n_perturbations=n_perturbations, **kwargs)


def spsa_gradient(
    f: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    *,
    n_perturbations: int = 8,
    eps: float = 1e-3,
    distribution: str = "gaussian",
    generator: torch.Generator | None = None,
    batched: bool = False,
) -> torch.Tensor:
    """Two-point randomized gradient estimate of a scalar function, from values only.

    ĝ = (1/n) Σ_k (f(x + εz_k) − f(x − εz_k)) / (2ε) · z_k, with E[z zᵀ] = I, so ĝ → ∇f
    as n → ∞ and ε → 0 (exactly unbiased for quadratics at any ε).

    Args:
        f: Objective. Unbatched: ``f(x) -> scalar``. Batched: ``f(X) -> (2n,)`` for a
            stack ``X`` of shape ``(2n, *x.shape)`` (one call evaluates every perturbation,
            e.g. a batched simulator).
        x: Point of shape ``x.shape``; not modified.
        n_perturbations: Number n ≥ 1 of random directions.
        eps: Perturbation scale ε > 0.
        distribution: ``"gaussian"`` or ``"rademacher"``.
        generator: Source of the directions (reproducibility).
        batched: Whether `f` takes the stacked batch.

    Returns:
        The estimate, shape ``x.shape``, dtype and device of `x`.
    """
    _check_common(0.0, eps, 0.0, n_perturbations, distribution)
    with torch.no_grad():
        x = x.detach()
        n = n_perturbations
        if distribution == "gaussian":
            z = torch.randn((n, *x.shape), generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        else:
            z = torch.randint(0, 2, (n, *x.shape), generator=generator).to(x.device, x.dtype).mul_(2).sub_(1)
        if batched:
            vals = torch.as_tensor(f(torch.cat([x + eps * z, x - eps * z])), dtype=x.dtype, device=x.device)
            if vals.shape != (2 * n,):
                raise ValueError(f"spsa_gradient: batched f must return shape ({2 * n},), got {tuple(vals.shape)}")
            fp, fm = vals[:n], vals[n:]
        else:
            fp = torch.tensor([_loss_value(f(x + eps * zk), "spsa_gradient") for zk in z], dtype=x.dtype)
            fm = torch.tensor([_loss_value(f(x - eps * zk), "spsa_gradient") for zk in z], dtype=x.dtype)
            fp, fm = fp.to(x.device), fm.to(x.device)
        coef = (fp - fm) / (2.0 * eps)
        return torch.einsum("k,k...->...", coef, z) / n
