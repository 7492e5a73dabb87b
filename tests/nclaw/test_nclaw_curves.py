"""Verify the training-length tools: windows without checkpoints give the same gradient; snapshots are evaluated."""

from __future__ import annotations

import pytest
import torch
from nclaw_helpers import perturbed, single_thread  # noqa: F401 (fixture)
from physim.operators.nclaw.curves import plot_curves, read_metrics, snapshot_errors
from physim.operators.nclaw.data import generate_trajectory
from physim.operators.nclaw.experiment import ExperimentConfig, train_one
from physim.operators.nclaw.fit import FitConfig, build_model, load_model, model_material, window_loss
from physim.operators.nclaw.scenes import SceneSpec, ground_truth_material, make_simulator

from physim.errors import ConfigError

TINY = SceneSpec(grid=24, particles_per_cell=1, steps=4, substeps=2, dt=1e-3, box=0.2, gap=0.0)


pytestmark = pytest.mark.usefixtures("single_thread")


def test_window_loss_gradient_is_the_same_with_and_without_checkpoints():
    """Verify the windowed loss and its weight gradient agree (float64) for K = 1, 3 and no checkpointing."""
    truth = make_simulator("train", TINY, {"main": ground_truth_material("jelly")}, dtype="float64")
    traj = generate_trajectory(truth, TINY.steps, {})
    model = perturbed(build_model("invariant", "jelly", TINY, width=8).double(), scale=0.05)  # last layers not 0
    sim = make_simulator("train", TINY, {"main": model_material(model)}, dtype="float64")
    results = []
    for k in (0, 1, 3):
        model.zero_grad(set_to_none=True)
        loss = window_loss(sim, model, traj, 3, k)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss0, g0), *others = results
    assert sum(float(g.abs().sum()) for g in g0) > 0
    for loss, g in others:
        torch.testing.assert_close(loss, loss0, rtol=1e-12, atol=0)
        for a, b in zip(g, g0):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * max(1.0, float(b.abs().max())))


def test_snapshots_are_saved_every_n_epochs_and_evaluated_on_the_cases(tmp_path):
    """Verify --snapshot-every saves the current model every N epochs and the curves tool evaluates each one."""
    cfg = ExperimentConfig(out=tmp_path, materials=("jelly",), variants=("analytic", "invariant"),
                           cases=("train", "shape", "multi"), spec=TINY, epochs=4,
                           fit=FitConfig(snapshot_every=2, progress=False, width=8, window_min=2))
    for variant in cfg.variants:
        train_one(cfg, "jelly", variant)
    folder = cfg.run_dir("jelly", "invariant") / "snapshots"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0002.pt", "epoch_0004.pt"]
    # the last snapshot is the model the run ended with (the checkpoint's), not the best one
    final = torch.load(cfg.run_dir("jelly", "analytic") / "checkpoint.pt", weights_only=False)["model"]
    last = load_model(cfg.run_dir("jelly", "analytic") / "snapshots" / "epoch_0004.pt", "jelly", "analytic")
    for k, v in last.state_dict().items():
        torch.testing.assert_close(v, final[k])
    errors = {v: snapshot_errors(cfg, "jelly", v) for v in cfg.variants}
    for rows in errors.values():
        assert [r["epoch"] for r in rows] == [2, 4]
        assert all(set(r) == {"epoch", "train", "shape"} and 0 <= r["train"] < 1 for r in rows)  # multi left out
    metrics = {v: read_metrics(cfg.run_dir("jelly", v)) for v in cfg.variants}
    assert [int(r["epoch"]) for r in metrics["invariant"]] == [0, 1, 2, 3]
    plot_curves("jelly", metrics, errors, ["train", "shape"], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_damaged_snapshot_or_metrics_file_is_one_error_naming_it(tmp_path):
    """Verify a truncated analytic snapshot and a non-numeric metrics.csv each raise one ConfigError naming the file."""
    bad = tmp_path / "epoch_0001.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="epoch_0001.pt"):
        load_model(bad, "jelly", "analytic")
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n0,abc\n")
    with pytest.raises(ConfigError, match="metrics.csv"):
        read_metrics(tmp_path)
