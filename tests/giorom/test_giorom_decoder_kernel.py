"""Verify the GIOROM decoder's Warp inference kernel against its torch sparse-product path, and
the choice between the two."""

from __future__ import annotations

import pytest
import torch
from physim.operators.giorom import KernelIntegralDecoder
from physim.operators.giorom import decoder as decoder_module

from physim.errors import ConfigError


def _trained_like(dim: int, channels: int, seed: int) -> KernelIntegralDecoder:
    torch.manual_seed(seed)
    dec = KernelIntegralDecoder(dim=dim, channels=channels, hidden=16, features=8)
    for head in (dec.head_c, dec.head_b, dec.head_s):  # non-zero learned terms
        torch.nn.init.normal_(head.weight, std=0.5)
        torch.nn.init.normal_(head.bias, std=0.5)
    return dec.eval()


@pytest.mark.parametrize(("dim", "channels"), [(2, 2), (3, 3), (2, 1)])
def test_warp_kernel_equals_torch_product(dim, channels):
    """Verify that the kernel's decode equals the torch sparse × dense product to float32 round-off,
    at queries in random order, at sparse points (snapped) and in three scenes of a batch (one with
fewer sparse points than neighbours per query)."""
    dec = _trained_like(dim, channels, seed=dim + channels)
    y = torch.rand(300, dim)
    values = 0.05 * torch.randn(300, channels)
    queries = torch.cat([torch.rand(2000, dim), y[:40]])[torch.randperm(2040)]
    batch = (torch.arange(300) >= 150).long() + (torch.arange(300) >= 295).long()  # scene 2: 5 points < k
    query_batch = torch.randint(0, 3, (2040,))
    with torch.no_grad():
        for kw in ({}, {"batch": batch, "query_batch": query_batch}):
            plan = dec.plan(y, queries, **kw)
            ref = dec(y, values, queries, plan=plan, backend="torch")
            out = dec(y, values, queries, plan=plan, backend="warp")
            assert out.shape == ref.shape == (2040, channels) and out.dtype == torch.float32
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6 * float(values.abs().max()))
    at_sparse = torch.nonzero((queries[:, None] == y[None, :40]).all(-1))
    with torch.no_grad():  # a query on a sparse point takes its value on the kernel path as well
        out = dec(y, values, queries, backend="warp")
    torch.testing.assert_close(out[at_sparse[:, 0]], values[at_sparse[:, 1]], rtol=1e-6, atol=1e-7)


def test_auto_backend_uses_the_kernel_only_for_float32_inference(monkeypatch):
    """Verify that "auto" decodes with the kernel under no_grad in float32, and with the
    differentiable torch product while a gradient is recorded or in float64."""
    dec = _trained_like(2, 2, seed=0)
    calls = []
    real = decoder_module._decode_warp
    monkeypatch.setattr(decoder_module, "_decode_warp", lambda *a: calls.append(1) or real(*a))
    y, values, queries = torch.rand(50, 2), 0.05 * torch.randn(50, 2), torch.rand(80, 2)
    with torch.no_grad():
        dec(y, values, queries)
    assert calls == [1]
    out = dec(y, values, queries)
    assert out.requires_grad and calls == [1]
    with torch.no_grad():
        dec.double()(y.double(), values.double(), queries.double())
    assert calls == [1]


def test_bad_backend_is_one_clear_error():
    """Verify that an unknown backend, or the kernel where it cannot serve, is one clear error."""
    dec = _trained_like(2, 2, seed=1)
    y, values, queries = torch.rand(20, 2), torch.randn(20, 2), torch.rand(10, 2)
    with pytest.raises(ConfigError, match="backend"):
        dec(y, values, queries, backend="numba")
    with pytest.raises(ConfigError, match="gradient"):
        dec(y, values, queries, backend="warp")
    with torch.no_grad(), pytest.raises(ConfigError, match="float64"):
        dec.double()(y.double(), values.double(), queries.double(), backend="warp")
