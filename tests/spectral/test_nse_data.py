"""`physim data nse`: HDF5 schema, resume after interruption, validation of malformed files, CLI."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

from physim.cli import main
from physim.errors import ConfigError
from physim.spectral import data as nse_data
from physim.spectral.data import NSEDataConfig, NSEDatasetError, SpaceTimeWindows, generate, load_nse_dataset


def _tiny(out, **kw) -> NSEDataConfig:
    base = {"out": out, "n_traj": 3, "n_solve": 16, "n_out": 8, "dt": 0.05, "warmup": 0.1, "frame_dt": 0.1,
            "n_frames": 4, "batch_size": 2, "progress": False, "device": "cpu"}
    return NSEDataConfig(**{**base, **kw})


def test_generate_writes_schema_and_matches_the_solver(tmp_path):
    """Verify the file layout, metadata and that stored frames are the subsampled solver states."""
    cfg = _tiny(tmp_path / "d.h5", dtype="float64")
    generate(cfg)
    d = load_nse_dataset(cfg.out)
    assert d.vorticity.shape == (3, 4, 8, 8) and d.vorticity.dtype == torch.float32
    assert d.time.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert d.settings["viscosity"] == 1e-3 and d.frame_dt == 0.1
    with h5py.File(cfg.out) as h5:
        assert h5.attrs["n_spatial_dims"] == 2 and h5["metadata"].attrs["physim_version"]
        assert json.loads(h5.attrs["simulation_parameters"])["n_solve"] == 16
    from physim.spectral import NavierStokes2D, NSEConfig

    sim = NavierStokes2D(NSEConfig(n=16, dt=0.05, substeps=2), device="cpu")
    s = sim.step(sim.reset(seed=0, batch=2))  # chunk 0 draws with seed 0; warm-up 0.1 s = one frame
    torch.testing.assert_close(d.vorticity[:2, 0], s.vorticity[:, ::2, ::2].float())
    assert not (tmp_path / "d.h5.parts").exists()


def test_interrupted_generation_resumes_from_finished_chunks(tmp_path, monkeypatch):
    """Verify a crash after the first chunk leaves no output file and a rerun solves only the rest."""
    cfg = _tiny(tmp_path / "r.h5")
    real = nse_data._solve_chunk
    calls = []

    def failing(cfg_, index, count, device, bar):
        calls.append(index)
        if index == 1:
            raise KeyboardInterrupt
        return real(cfg_, index, count, device, bar)

    monkeypatch.setattr(nse_data, "_solve_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg)
    assert not cfg.out.exists() and (tmp_path / "r.h5.parts" / "chunk_00000.pt").exists()
    calls.clear()
    monkeypatch.setattr(nse_data, "_solve_chunk", lambda *a: (calls.append(a[1]), real(*a))[1])
    generate(cfg)
    assert calls == [1]
    assert load_nse_dataset(cfg.out).vorticity.shape[0] == 3


def test_malformed_files_give_one_line_naming_the_file(tmp_path):
    """Verify missing, non-HDF5, foreign and truncated-schema files raise NSEDatasetError naming the file."""
    with pytest.raises(NSEDatasetError, match="nope.h5: no such file"):
        load_nse_dataset(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(NSEDatasetError, match="junk.h5: not a readable HDF5 file"):
        load_nse_dataset(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5.create_dataset("x", data=[1, 2])
    with pytest.raises(NSEDatasetError, match="foreign.h5: not a physim"):
        load_nse_dataset(foreign)
    cfg = _tiny(tmp_path / "ok.h5", n_traj=1, batch_size=1)
    generate(cfg)
    with h5py.File(cfg.out, "a") as h5:
        del h5["forcing"]
    with pytest.raises(NSEDatasetError, match="ok.h5: missing dataset 'forcing'"):
        load_nse_dataset(cfg.out)


def test_config_and_window_validation():
    """Verify presets resolve, and bad resolutions, divisibility and windows raise ConfigError."""
    cfg = NSEDataConfig(preset="fno")
    assert (cfg.n_solve, cfg.n_out, cfg.warmup, cfg.n_frames) == (256, 64, 30.0, 100)
    assert NSEDataConfig(preset="cpu", n_traj=5).n_traj == 5
    with pytest.raises(ConfigError, match="n_out=48 .*divisor"):
        NSEDataConfig(n_solve=64, n_out=48)
    with pytest.raises(ConfigError, match="n_solve=63"):
        NSEDataConfig(n_solve=63)
    with pytest.raises(ConfigError, match="frame_dt=0.15 .*multiple of dt=0.1"):
        NSEDataConfig(dt=0.1, frame_dt=0.15)
    w = torch.zeros(4, 12, 8, 8)
    ds = SpaceTimeWindows(w, 3, 5, start=2)
    assert ds[0]["x"].shape == (8, 8, 3) and ds[0]["y"].shape == (8, 8, 5) and len(ds) == 4
    with pytest.raises(ConfigError, match="t_out"):
        SpaceTimeWindows(w, 10, 5)


def test_cli_group_generates_a_file(tmp_path, capsys):
    """Verify `physim data nse` runs through the command table and bad options exit with status 2."""
    out = tmp_path / "cli.h5"
    rc = main(["data", "nse", "--out", str(out), "--n-traj", "1", "--n-solve", "8", "--n-out", "8", "--dt", "0.1",
               "--warmup", "0", "--frame-dt", "0.1", "--n-frames", "2", "--no-progress", "--device", "cpu"])
    assert rc == 0 and load_nse_dataset(out).vorticity.shape == (1, 2, 8, 8)
    rc = main(["data", "nse", "--out", str(out), "--n-solve", "31", "--n-out", "31"])
    assert rc == 2  # one error line, no traceback
    captured = capsys.readouterr()
    assert "n_solve=31" in captured.out + captured.err
