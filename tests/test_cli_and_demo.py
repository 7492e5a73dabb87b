"""Verify the `physim` command, the demo job and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_python

from physim.io.atomic import atomic_path, atomic_write_text


def test_physim_info_prints_every_version():
    """Verify that `physim info` reports each backend's version, dolfinx included, and the device."""
    res = run_python("-m", "physim.cli", "info")
    assert res.returncode == 0, res.stderr
    rows = dict(line.split(None, 1) for line in res.stdout.splitlines() if line.strip() and "  " in line)
    for name in ("torch", "warp-lang", "taichi", "dolfinx", "e3nn", "torch-geometric", "gymnasium"):
        assert name in rows, f"{name} missing from:\n{res.stdout}"
        assert rows[name][0].isdigit(), f"{name}: {rows[name]}"
    assert rows["dolfinx"].startswith("0.5")
    assert "device" in rows and "cpu threads" in res.stdout


@pytest.mark.parametrize(("value", "expected"), [
    ("gpu", "PHYSIM_DEVICE='gpu' is invalid: expected one of auto, cpu, cuda"),
    ("cuda", "PHYSIM_DEVICE='cuda' is invalid: expected 'cpu' or 'auto'"),
])
def test_bad_device_is_one_line_without_traceback(value, expected):
    """Verify that a bad PHYSIM_DEVICE makes the command print one line and exit with status 2."""
    import torch

    if value == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so PHYSIM_DEVICE=cuda is valid here")
    res = run_python("-m", "physim.cli", "info", env={"PHYSIM_DEVICE": value})
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"physim: error: {expected}")


def test_demo_config_is_validated_by_the_command():
    """Verify that a bad demo option is refused in one line naming the field."""
    res = run_python("-m", "physim.cli", "demo", "--iterations", "0")
    assert res.returncode == 2 and "iterations=0 is invalid" in res.stderr and "Traceback" not in res.stderr


def test_demo_fits_the_chain_and_writes_its_files(tmp_path):
    """Verify that a short demo lowers the loss and writes a PNG, a GIF and a JSON summary."""
    res = run_python("-m", "physim.cli", "demo", "--out", str(tmp_path), "--iterations", "40", "--steps", "30")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["losses"][-1] < 1e-2 * summary["losses"][0]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "chain.gif").read_bytes()[:6] == b"GIF89a"
    assert "lower" in res.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    """Verify that a failed write keeps the previous file intact and leaves no temporary file."""
    target = tmp_path / "data.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        Path(tmp).write_text("half-writ")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_atomic_write_respects_umask(tmp_path):
    """Verify that atomically written files get the permissions of an ordinary open() (not mkstemp's 0600)."""
    import os

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
