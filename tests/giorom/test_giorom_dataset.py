"""Verify the Lagrangian HDF5 shards: round trip, split loading, and one-line errors on malformed files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from physim.operators.lagrangian import (
    DatasetFileError,
    Trajectory,
    WindowDataset,
    collate_windows,
    load_split,
    read_trajectories,
    write_trajectories,
)
from physim.operators.lagrangian.synthetic import rigid_body

BOUNDS = [[0.0, 0.0], [1.0, 1.0]]


def _write(path, trajs=None):
    trajs = trajs or [rigid_body(count=30, frames=12, seed=s, material_type=s % 5) for s in range(3)]
    return write_trajectories(path, trajs, dt=2e-3, bounds=BOUNDS, attrs={"seed": 7, "preset": "test"})


def test_round_trip_keeps_positions_types_and_metadata(tmp_path):
    """Verify that a written shard reads back bit-identical, with its metadata."""
    trajs = [rigid_body(count=30, frames=12, seed=s, material_type=s) for s in range(3)]
    path = _write(tmp_path / "a.h5", trajs)
    data = read_trajectories(path)
    assert data.dim == 2 and data.dt == pytest.approx(2e-3) and data.materials[3] == "water"
    np.testing.assert_array_equal(data.bounds, BOUNDS)
    assert data.attrs["seed"] == 7 and data.attrs["preset"] == "test" and "physim_version" in data.attrs
    assert len(data.trajectories) == 3
    for a, b in zip(trajs, data.trajectories):
        assert torch.equal(a.positions, b.positions) and torch.equal(a.particle_type, b.particle_type)
        assert b.material == "rigid" and b.attrs["seed"] == a.attrs["seed"]


def test_windows_and_collate(tmp_path):
    """Verify window extraction (history + target, frame stride) and batching of different particle counts."""
    a, b = rigid_body(count=10, frames=20, seed=0), rigid_body(count=7, frames=20, seed=1)
    ds = WindowDataset([a, b], history=6, frame_stride=2)
    # 20 frames at stride 2 -> 10 model steps -> 10 - 7 + 1 = 4 windows per trajectory
    assert len(ds) == 8
    item = ds[1]
    assert item["positions"].shape == (10, 7, 2)
    assert torch.equal(item["positions"][:, 0], a.positions[2])
    assert torch.equal(item["positions"][:, 6], a.positions[14])
    assert torch.equal(item["reference"], a.positions[0])
    batch = collate_windows([ds[0], ds[5]])
    assert batch["positions"].shape == (17, 7, 2)
    assert batch["batch"].tolist() == [0] * 10 + [1] * 7


def test_load_split_reads_the_manifest(tmp_path):
    """Verify that a dataset folder's manifest lists the shards of each split."""
    _write(tmp_path / "train" / "shard_00000.h5")
    _write(tmp_path / "train" / "shard_00001.h5")
    _write(tmp_path / "test" / "shard_00000.h5")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"splits": {"train": ["train/shard_00000.h5", "train/shard_00001.h5"], "test": ["test/shard_00000.h5"]}}))
    assert len(load_split(tmp_path, "train")) == 2
    with pytest.raises(DatasetFileError, match="splits.valid"):
        load_split(tmp_path, "valid")


def _corrupt(path, action):
    with h5py.File(path, "r+") as f:
        action(f)


@pytest.mark.parametrize(
    ("action", "key", "problem"),
    [
        (lambda f: f.attrs.__delitem__("dt"), "/@dt", "missing"),
        (lambda f: f.attrs.__setitem__("format", "something-else"), "/@format", "expected"),
        (lambda f: f.__delitem__("trajectories/traj_00001/positions"), "/trajectories/traj_00001/positions",
         "missing"),
        (lambda f: f.__delitem__("trajectories/traj_00000/particle_type"), "/trajectories/traj_00000/particle_type",
         "missing"),
        (lambda f: (f.__delitem__("trajectories/traj_00002/positions"),
                    f.create_dataset("trajectories/traj_00002/positions", data=np.zeros((12, 30, 3)))),
         "/trajectories/traj_00002/positions", "shape"),
        (lambda f: f["trajectories/traj_00001/positions"].__setitem__((5, 3, 1), np.nan),
         "/trajectories/traj_00001/positions", "NaN"),
        (lambda f: (f.__delitem__("trajectories/traj_00000/particle_type"),
                    f.create_dataset("trajectories/traj_00000/particle_type", data=np.full(30, 9))),
         "/trajectories/traj_00000/particle_type", "materials"),
        (lambda f: f.attrs.__setitem__("bounds", np.zeros((2, 3))), "/@bounds", "expected"),
    ],
)
def test_malformed_shard_is_one_line_naming_file_and_key(tmp_path, action, key, problem):
    """Verify that a missing key, a wrong shape or NaN gives one error line naming the file and the key."""
    path = _write(tmp_path / "bad.h5")
    _corrupt(path, action)
    with pytest.raises(DatasetFileError) as info:
        read_trajectories(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path)) and key in msg and problem in msg
    assert isinstance(info.value, ValueError)


def test_missing_or_foreign_file(tmp_path):
    """Verify errors for a missing file and for a file that is not HDF5."""
    with pytest.raises(DatasetFileError, match="no such file"):
        read_trajectories(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DatasetFileError, match="not a readable HDF5 file"):
        read_trajectories(tmp_path / "junk.h5")


def test_writer_rejects_mismatched_dimension(tmp_path):
    """Verify that writing 3-D positions into a 2-D dataset fails and leaves no file behind."""
    traj = Trajectory(positions=torch.zeros(4, 5, 3), particle_type=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="expected"):
        write_trajectories(tmp_path / "x.h5", [traj], dt=1e-3, bounds=BOUNDS)
    assert list(tmp_path.iterdir()) == []
