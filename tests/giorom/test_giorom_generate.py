"""Verify the MPM dataset generator: splits, schema, determinism, resumption, and the CLI entry."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from physim.operators.lagrangian import load_split, read_trajectories
from physim.operators.lagrangian.dataset import MATERIALS
from physim.operators.lagrangian.generate import (
    PRESETS,
    MPMDatasetConfig,
    generate_mpm_dataset,
    material_object,
    scene_spec,
)

from physim.cli import main as physim_main
from physim.mpm import SceneConfig


def _tiny(out, **kw):
    base = {"out": out, "preset": "cpu-2d", "materials": ("jelly", "water"), "trajectories": 3, "frames": 4,
            "grid": 24, "particles_per_cell": 1, "shard_size": 2, "workers": 1, "progress": False}
    base.update(kw)
    return MPMDatasetConfig(**base)


def test_scenes_depend_only_on_seed_material_and_index():
    """Verify that a scene is a pure function of (seed, material, index) and differs across them."""
    p = PRESETS["cpu-2d"]
    assert scene_spec(p, "sand", 3, 7) == scene_spec(p, "sand", 3, 7)
    assert scene_spec(p, "sand", 3, 7) != scene_spec(p, "sand", 4, 7)
    assert scene_spec(p, "sand", 3, 7) != scene_spec(p, "water", 3, 7)
    for preset in ("cpu-3d", "cpu-2d-dense"):
        wall = 3 / PRESETS[preset].grid
        for i in range(20):  # every body starts inside the walls
            for body in scene_spec(PRESETS[preset], "jelly", i, 0)["bodies"]:
                c, s = np.array(body["center"]), np.array(body["size"])
                assert np.all(c - s / 2 > wall) and np.all(c + s / 2 < 1 - wall)


def test_dense_preset_is_cpu_2d_at_half_the_spacing():
    """Verify that cpu-2d-dense keeps cpu-2d's frame length and halves its particle spacing (its
    purpose: the same kind of motion with 4× the particles), and that its dt meets every dataset
    material's CFL and viscous bounds (the simulator's own checks, at its default cfl)."""
    base, dense = PRESETS["cpu-2d"], PRESETS["cpu-2d-dense"]
    assert dense.dt * dense.substeps == pytest.approx(base.dt * base.substeps)
    assert dense.grid == 2 * base.grid and dense.particles_per_cell == base.particles_per_cell
    dx, cfl = 1 / dense.grid, SceneConfig(dim=2, grid=dense.grid, dt=dense.dt).cfl
    for name in MATERIALS:
        material = material_object(name)
        assert dense.dt <= cfl * dx / material.wave_speed(), name
        nu = material.kinematic_viscosity()
        assert nu == 0 or dense.dt <= cfl * dx * dx / (dense.dim * nu), name


def test_generate_writes_valid_splits_and_resumes(tmp_path):
    """Verify a tiny generated dataset: manifest, splits per material, schema, materials, and that a
    second run keeps existing shards and regenerates a deleted one identically."""
    cfg = _tiny(tmp_path / "d")
    manifest = json.loads(generate_mpm_dataset(cfg).read_text())
    assert manifest["trajectories"] == {"train": 2, "valid": 2, "test": 2}  # 3 per material -> 1/1/1
    train = [t for f in load_split(cfg.out, "train") for t in f.trajectories]
    assert sorted(t.material for t in train) == ["jelly", "water"]
    shard = read_trajectories(cfg.out / manifest["splits"]["test"][0])
    assert shard.dim == 2 and shard.dt == pytest.approx(PRESETS["cpu-2d"].dt * PRESETS["cpu-2d"].substeps)
    for t in shard.trajectories:
        assert t.positions.shape[0] == 4 and t.positions.shape[2] == 2
        assert int(t.particle_type[0]) == shard.materials.index(t.material)
        lo, hi = shard.bounds
        assert torch.all(t.positions >= torch.tensor(lo) - 1e-6) and torch.all(t.positions <= torch.tensor(hi) + 1e-6)
        assert not torch.equal(t.positions[0], t.positions[-1])  # it moved
    kept = cfg.out / manifest["splits"]["train"][0]
    removed = cfg.out / manifest["splits"]["valid"][0]
    before = read_trajectories(removed).trajectories[0].positions
    mtime = os.stat(kept).st_mtime_ns
    removed.unlink()
    generate_mpm_dataset(cfg)
    assert os.stat(kept).st_mtime_ns == mtime
    assert torch.equal(read_trajectories(removed).trajectories[0].positions, before)


@pytest.mark.slow
def test_dataset_is_identical_with_parallel_workers(tmp_path):
    """Verify that two worker processes produce exactly the dataset of one process (CPU)."""
    a = generate_mpm_dataset(_tiny(tmp_path / "a", workers=1)).parent
    b = generate_mpm_dataset(_tiny(tmp_path / "b", workers=2)).parent
    for split in ("train", "valid", "test"):
        ta = [t for f in load_split(a, split) for t in f.trajectories]
        tb = [t for f in load_split(b, split) for t in f.trajectories]
        assert [t.name for t in ta] == [t.name for t in tb]
        assert all(torch.equal(x.positions, y.positions) for x, y in zip(ta, tb))


def test_bad_options_are_rejected_before_any_simulation(capsys):
    """Verify that bad settings raise one ConfigError naming the field, and that `physim data mpm`
    exits with status 2 naming it."""
    from physim.errors import ConfigError

    for kw, field in (({"preset": "huge"}, "preset"), ({"materials": ("jelly", "lava")}, "materials"),
                      ({"splits": (0.5, 0.5, 0.5)}, "splits"), ({"workers": 0}, "workers")):
        with pytest.raises(ConfigError) as info:
            MPMDatasetConfig(**kw)
        assert info.value.field == field and "\n" not in str(info.value)
    assert physim_main(["data", "mpm", "--preset", "huge", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "preset='huge'" in err and err.count("\n") == 1


def test_gen_mpm_dataset_script_is_the_cli_command():
    """Verify that scripts/gen_mpm_dataset.py parses and validates like `physim data mpm`: a bad
    option exits with status 2 and one line naming it."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_mpm_dataset.py"
    proc = subprocess.run([sys.executable, str(script), "--workers", "0", "--out", "unused"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "workers=0" in lines[0], proc.stderr
