"""AdAdaGrad-style adaptive batch size: the norm test as a hook of the training loop.

Lau, Liu & Kolar ("AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient
Methods", 2024) grow the batch whenever the mini-batch gradient is too noisy relative
to its size. With per-sample gradients g_i of a batch of b samples and their mean ḡ,
the (approximate) norm test asks

    tr Var̂(g_i) / b  ≤  η² ‖ḡ‖²,        tr Var̂ = Σ_i ‖g_i − ḡ‖² / (b − 1),

and when it fails the next batch size is ``b_new = ⌈tr Var̂ / (η² ‖ḡ‖²)⌉`` (never
smaller than b, capped by `max_batch_size`). Written from the paper.

Use it with the shared training loop::

    from physim.optim import AdaptiveBatchSize
    trainer = Trainer(model, cfg, train_set, loss_fn=loss, callbacks=[AdaptiveBatchSize(eta=0.5)])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from physim.config import check_int, check_positive
from physim.errors import ConfigError

__all__ = ["AdaptiveBatchSize", "norm_test_batch_size", "per_sample_gradients"]


def norm_test_batch_size(
    per_sample_grads: torch.Tensor, eta: float, *, current: int | None = None, max_batch_size: int | None = None
) -> int:
    """Batch size the norm test asks for, given per-sample gradients of one batch.

    Args:
        per_sample_grads: Shape (b, d), b ≥ 2 flattened per-sample gradients.
        eta: Test constant η > 0 (smaller → larger batches).
        current: Current batch size (the result is never smaller); default b.
        max_batch_size: Upper bound of the result.

    Returns:
        ``max(current, ⌈tr Var̂ / (η² ‖ḡ‖²)⌉)``, capped by `max_batch_size`.
    """
    check_positive("eta", eta)
    G = per_sample_grads
    if G.ndim != 2 or G.shape[0] < 2:
        raise ConfigError("per_sample_grads", tuple(G.shape), "shape (b, d) with b >= 2 samples")
    G = G.to(torch.float64)
    b = G.shape[0]
    current = b if current is None else current
    mean = G.mean(0)
    trace_var = float(((G - mean) ** 2).sum()) / (b - 1)
    denom = eta**2 * float(mean.pow(2).sum())
    wanted = current if trace_var == 0 else (math.inf if denom == 0 else math.ceil(trace_var / denom))
    new = max(current, wanted)
    if max_batch_size is not None:
        new = min(new, max_batch_size)
    return int(new) if math.isfinite(new) else int(current if max_batch_size is None else max_batch_size)


def per_sample_gradients(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], Any],
    samples: Sequence[Any],
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> torch.Tensor:
    """Flattened gradient of ``loss_fn(model, batch_of_one)`` for each sample, shape (b, d).

    Works with any loss function the training loop accepts (one backward per sample;
    the probe batch is small, so the loop over samples is cheaper than making every
    loss ``vmap``-compatible). The model's ``.grad`` fields are left untouched.
    """
    from torch.utils.data import default_collate

    collate = collate_fn or default_collate
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for s in samples:
        out = loss_fn(model, collate([s]))
        loss = out[0] if isinstance(out, tuple) else out
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, params)]))
    return torch.stack(rows)


class AdaptiveBatchSize:
    """Training-loop callback: grow the batch size by the norm test after every epoch.

    Args:
        eta: Norm-test constant η > 0 (the paper uses values around 0.1–1).
        probe_size: Samples drawn (with the run's seed) to estimate the gradient variance;
            at least 2; default: the current batch size.
        max_batch_size: Upper bound; default: the dataset size.
        every: Test every this many epochs.
        seed: Seed of the probe draws.

    After each test, ``history`` gets ``(epoch, batch_size)``; the trainer's
    ``set_batch_size`` makes the change effective from the next epoch. The training data
    must be a map-style ``Dataset`` (the probe draws samples from it).
    """

    def __init__(self, eta: float = 0.5, *, probe_size: int | None = None, max_batch_size: int | None = None,
                 every: int = 1, seed: int = 0):
        check_positive("eta", eta)
        if probe_size is not None:
            check_int("probe_size", probe_size, 2)
        if max_batch_size is not None:
            check_int("max_batch_size", max_batch_size, 1)
        check_int("every", every, 1)
        self.eta, self.probe_size, self.max_batch_size, self.every = eta, probe_size, max_batch_size, every
        self.gen = torch.Generator().manual_seed(seed)
        self.history: list[tuple[int, int]] = []

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        """Run the norm test on a probe batch and call ``trainer.set_batch_size``."""
        if (epoch + 1) % self.every:
            return
        data = trainer.train_data
        if not (isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__")):
            raise ConfigError("train_data", type(data).__name__, "a map-style Dataset for AdaptiveBatchSize")
        n = len(data)
        b = trainer.batch_size
        probe = min(n, max(2, self.probe_size or b))
        idx = torch.randperm(n, generator=self.gen)[:probe].tolist()
        model = trainer.model
        was_training = model.training
        model.train()
        collate = trainer.collate_fn
        G = per_sample_gradients(model, lambda m, batch: trainer.loss_fn(m, trainer.to_device(batch)),
                                 [data[i] for i in idx], collate)
        model.train(was_training)
        cap = self.max_batch_size or n
        new = norm_test_batch_size(G, self.eta, current=b, max_batch_size=cap)
        self.history.append((epoch, new))
        if new != b:
            trainer.set_batch_size(new)
