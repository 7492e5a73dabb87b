"""Verify the `physim gas demo` job end to end on a tiny room (slow: it optimises a fan)."""

from __future__ import annotations

import json

import pytest

from physim.cli import main


@pytest.mark.slow
def test_gas_demo_steers_smoke_into_the_target(tmp_path):
    """Verify the demo writes its GIFs, plot and summary, and that Adam increases the smoke in the target."""
    out = tmp_path / "gas"
    assert main(["gas", "demo", "--out", str(out), "--resolution", "24", "--steps", "40", "--iterations", "4"]) == 0
    summary = json.loads((out / "result.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["loss.png", "plume_first.gif", "plume_optimised.gif",
                                                     "result.json"]
    assert summary["target_fraction_final"] > summary["target_fraction_first"]


def test_gas_demo_rejects_bad_options(capsys):
    """Verify a bad option value stops the command with status 2 and a message naming the option."""
    assert main(["gas", "demo", "--resolution", "4"]) == 2
    err = capsys.readouterr().err
    assert "resolution=4 is invalid" in err and err.count("\n") == 1
