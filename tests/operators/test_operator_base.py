"""Verify self-registering operators: recorded kwargs, atomic save, load, and clear errors on bad files."""

from __future__ import annotations

import physim.operators as ops
import pytest
import torch
from physim.operators import OperatorBase, OperatorFileError
from torch import nn


class TinyOperator(OperatorBase, name="test-tiny"):
    def __init__(self, *, width: int = 8, depth: int = 2, activation: str = "gelu"):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(3, width)]
        for _ in range(depth - 1):
            layers += [nn.GELU() if activation == "gelu" else nn.ReLU(), nn.Linear(width, width)]
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x)


class WiderTiny(TinyOperator, name="test-wider"):
    def __init__(self, *, width: int = 16, **kw):
        super().__init__(width=width, **kw)


def test_save_load_gives_identical_predictions(tmp_path):
    """Verify that load() rebuilds the same architecture from metadata alone and predicts identically."""
    torch.manual_seed(0)
    model = TinyOperator(width=5, depth=3)
    assert model.metadata()["kwargs"] == {"width": 5, "depth": 3, "activation": "gelu"}
    path = model.save(tmp_path / "m.pt")
    again = ops.load(path)
    x = torch.randn(4, 3)
    assert type(again) is TinyOperator and torch.equal(model(x), again(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_subclass_records_outermost_kwargs(tmp_path):
    """Verify that a subclass's own defaults are what is recorded and restored."""
    m = WiderTiny(depth=1)
    assert m.metadata()["name"] == "test-wider"
    assert m.metadata()["kwargs"] == {"width": 16, "depth": 1}
    assert ops.load(m.save(tmp_path / "w.pt")).net[0].out_features == 16


def test_constructor_rules():
    """Verify keyword-only construction and JSON-serialisable arguments."""
    with pytest.raises(TypeError, match="keyword arguments only"):
        TinyOperator(4)
    with pytest.raises(TypeError, match="activation=.* cannot be saved"):
        TinyOperator(activation=object())


def test_bad_files_are_one_clear_error(tmp_path):
    """Verify missing, truncated, foreign and version-mismatched files name the file and the problem."""
    with pytest.raises(OperatorFileError, match="nope.pt: no such file"):
        ops.load(tmp_path / "nope.pt")
    good = TinyOperator().save(tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(OperatorFileError, match="cut.pt: cannot be read"):
        ops.load(tmp_path / "cut.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(OperatorFileError, match="not a physim operator file"):
        ops.load(tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    payload["metadata"]["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(OperatorFileError, match="format version 99 is not supported"):
        ops.load(tmp_path / "future.pt")
    payload["metadata"].update(format_version=1, name="no-such-operator", module="")
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(OperatorFileError, match="operator 'no-such-operator' is unknown"):
        ops.load(tmp_path / "unknown.pt")
