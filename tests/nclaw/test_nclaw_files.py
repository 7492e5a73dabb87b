"""Verify learned-law files: save/load round trip, and one clear error naming a bad file."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from physim.operators import OperatorFileError
from physim.operators.nclaw import (
    InvariantElasticLaw,
    NeuralConstitutiveLaw,
    NeuralPlasticity,
    load_law,
)

from physim.errors import ConfigError


def _law():
    torch.manual_seed(0)
    stress = InvariantElasticLaw(dim=2, width=8, youngs_modulus=3e5)
    plastic = NeuralPlasticity(dim=2, width=8)
    with torch.no_grad():
        for p in [*stress.parameters(), *plastic.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    return NeuralConstitutiveLaw.from_parts(stress, plastic, density=1200.0, label="plasticine")


def test_round_trip_restores_the_same_law(tmp_path):
    """Verify save + load_law rebuilds both parts with identical outputs, density and label."""
    law = _law()
    path = law.save(tmp_path / "law.pt")
    again = load_law(path)
    F = torch.eye(2) + 0.1 * torch.randn(16, 2, 2)
    assert torch.equal(again(F), law(F)) and torch.equal(again.project(F), law.project(F))
    assert again.density == 1200.0 and again.label == "plasticine"
    assert [p.name for p in tmp_path.iterdir()] == ["law.pt"]


def test_bad_files_raise_one_error_naming_the_file(tmp_path):
    """Verify missing, truncated, incompatible-version and foreign files each give one OperatorFileError."""
    with pytest.raises(OperatorFileError, match=r"missing\.pt: no such file"):
        load_law(tmp_path / "missing.pt")
    good = _law().save(tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(OperatorFileError, match=r"cut\.pt: cannot be read"):
        load_law(tmp_path / "cut.pt")
    payload = torch.load(good, weights_only=True)
    payload["metadata"]["kwargs"]["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(OperatorFileError, match=r"future\.pt: incompatible NCLaw law .*version=99"):
        load_law(tmp_path / "future.pt")
    payload = torch.load(good, weights_only=True)
    payload["metadata"]["format_version"] = 0
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(OperatorFileError, match=r"old\.pt: format version 0"):
        load_law(tmp_path / "old.pt")
    InvariantElasticLaw(dim=2).save(tmp_path / "part.pt")
    with pytest.raises(OperatorFileError, match=r"part\.pt: holds operator 'nclaw-invariant', not an NCLaw law"):
        load_law(tmp_path / "part.pt")
    payload = torch.load(good, weights_only=True)
    payload["state_dict"].pop("stress.log_mu")
    torch.save(payload, tmp_path / "torn.pt")
    with pytest.raises(OperatorFileError, match=r"torn\.pt: weights do not fit nclaw"):
        load_law(tmp_path / "torn.pt")


def test_law_spec_errors_name_the_field():
    """Verify an unknown part name or mismatched dimensions raise ConfigError naming the field."""
    with pytest.raises(ConfigError, match="elastic="):
        NeuralConstitutiveLaw(elastic={"name": "nope"})
    with pytest.raises(ConfigError, match="plastic.kwargs.dim=3"):
        NeuralConstitutiveLaw(elastic={"name": "nclaw-invariant", "kwargs": {"dim": 2}},
                              plastic={"name": "nclaw-plastic", "kwargs": {"dim": 3}})


def test_importing_nclaw_loads_no_backend():
    """Verify `import physim.operators.nclaw` imports neither e3nn nor warp (they load on first use)."""
    code = ("import sys, physim.operators.nclaw; "
            "print([m for m in ('e3nn', 'warp', 'taichi') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
