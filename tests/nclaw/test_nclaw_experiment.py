"""Verify the benchmark driver's evaluation cache: reused only for the same spec and the same model files."""

from __future__ import annotations

import os

import torch
from physim.operators.nclaw.experiment import ExperimentConfig, _EvalCache
from physim.operators.nclaw.scenes import SceneSpec


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_evaluation_cache_is_invalidated_by_a_retrained_model_or_another_spec(tmp_path):
    """Verify cached errors come back only while the model files (and the partner's, for multi) are unchanged."""
    cfg = ExperimentConfig(out=tmp_path, materials=("jelly",))
    _touch(cfg.run_dir("jelly", "invariant") / "law.pt")
    _touch(cfg.run_dir("plasticine", "invariant") / "law.pt")
    cache = _EvalCache(cfg, "jelly", "invariant")
    x = torch.zeros(3, 4, 2)
    cache.put("shape", {"error": 0.1, "note": ""}, x)
    cache.put("multi", {"error": 0.2, "note": ""}, None)
    again = _EvalCache(cfg, "jelly", "invariant")
    result, xs = again.get("shape")
    assert result == {"error": 0.1, "note": ""} and torch.equal(xs, x)
    assert again.get("multi")[0]["error"] == 0.2 and again.get("velocity") is None
    # the partner is retrained: only the multi-material entry is stale
    partner = cfg.run_dir("plasticine", "invariant") / "law.pt"
    _touch(partner, "retrained")
    os.utime(partner, ns=(1, 1))
    again = _EvalCache(cfg, "jelly", "invariant")
    assert again.get("shape") is not None and again.get("multi") is None
    # the model itself is retrained, or the scene changes: nothing is reused
    _touch(cfg.run_dir("jelly", "invariant") / "law.pt", "retrained")
    assert _EvalCache(cfg, "jelly", "invariant").get("shape") is None
    other = ExperimentConfig(out=tmp_path, materials=("jelly",), spec=SceneSpec(grid=48))
    assert _EvalCache(other, "jelly", "invariant").get("shape") is None


def test_damaged_evaluation_cache_is_recomputed_not_trusted(tmp_path):
    """Verify a truncated evaluation cache is ignored (every case evaluated again)."""
    cfg = ExperimentConfig(out=tmp_path, materials=("jelly",))
    _touch(cfg.run_dir("jelly", "mlp") / "law.pt")
    cache = _EvalCache(cfg, "jelly", "mlp")
    cache.put("train", {"error": 0.3, "note": ""}, None)
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2])
    assert _EvalCache(cfg, "jelly", "mlp").get("train") is None


def test_ground_truth_recorded_by_other_mpm_code_is_generated_again(tmp_path, monkeypatch):
    """Verify a ground-truth file is reused for the same code and regenerated after an engine change."""
    from physim.operators.nclaw import experiment

    spec = SceneSpec(grid=24, particles_per_cell=1, steps=2, substeps=2, dt=1e-3, box=0.2, gap=0.0)
    first = experiment.ground_truth("jelly", "train", spec, tmp_path)
    path = tmp_path / "jelly_train.h5"
    stamp = path.stat().st_mtime_ns
    assert experiment.ground_truth("jelly", "train", spec, tmp_path).meta["code"] == first.meta["code"]
    assert path.stat().st_mtime_ns == stamp  # reused, not rewritten
    monkeypatch.setattr(experiment, "source_digest", lambda *packages: "another engine")
    again = experiment.ground_truth("jelly", "train", spec, tmp_path)
    assert again.meta["code"] == "another engine" and path.stat().st_mtime_ns != stamp
    torch.testing.assert_close(again.x, first.x)  # same physics, so the same trajectory
