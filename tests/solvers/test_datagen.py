"""Verify `physim data darcy|poisson`: solutions of the PDE, the HDF5 schema, resuming, and file validation."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as sla
from solvers_fixtures import single_thread  # noqa: F401  (autouse fixture)

import physim
from physim.cli import main
from physim.errors import ConfigError
from physim.solvers.datagen import (
    SCHEMA,
    DarcyDataConfig,
    DataFileError,
    PoissonDataConfig,
    generate,
    load_dataset,
)
from physim.solvers.problems import darcy_matrix, poisson_matrix


def test_darcy_dataset_solves_the_pde(tmp_path):
    """Verify each stored u solves the Darcy system of its stored a, and the metadata describe the run."""
    out = generate(DarcyDataConfig(out=tmp_path / "d.h5", n_samples=6, resolution=16, chunk=4, progress=False))
    ds = load_dataset(out)
    assert ds["x"].shape == (6, 16, 16) and ds["y"].dtype == np.float32
    assert ds["converged"].all() and (ds["relative_residual"] <= 1e-8).all()
    for i in range(6):
        A = darcy_matrix(ds["x"][i].astype(np.float64))
        u = sla.spsolve(A.tocsc(), np.ones(256))
        # Stored in float32: compare at float32 accuracy (the float64 solve met rtol 1e-8).
        assert np.allclose(ds["y"][i].ravel(), u, rtol=1e-5, atol=1e-6 * abs(u).max())
    meta = ds["metadata"]
    assert meta["solver"] == "gcrodr" and meta["recycle"] and meta["sort"] == "greedy"
    assert meta["physim_version"] == physim.__version__ and json.loads(meta["config"])["seed"] == 0
    assert set(json.loads(meta["units"])) >= {"x", "y"}
    assert sorted(ds["solve_order"].tolist()) == list(range(6))
    assert not (tmp_path / "d.h5.parts").exists()


def test_poisson_dataset_matches_direct_solver(tmp_path):
    """Verify the recycled Krylov data equal the sparse-LU data, and the coordinates are the interior nodes."""
    kw = {"n_samples": 4, "resolution": 12, "progress": False, "seed": 3}
    krylov = load_dataset(generate(PoissonDataConfig(out=tmp_path / "k.h5", **kw)))
    direct = load_dataset(generate(PoissonDataConfig(out=tmp_path / "l.h5", solver="direct", **kw)))
    assert np.array_equal(krylov["x"], direct["x"])
    assert np.allclose(krylov["y"], direct["y"], rtol=1e-5, atol=1e-6 * abs(direct["y"]).max())
    L = poisson_matrix(12)
    f = krylov["x"][0].astype(np.float64).ravel()
    assert np.linalg.norm(L @ direct["y"][0].astype(np.float64).ravel() - f) < 1e-5 * np.linalg.norm(f)
    assert np.allclose(krylov["coords"], np.arange(1, 13) / 13)


def test_resume_skips_solved_chunks(tmp_path, monkeypatch):
    """Verify an interrupted run resumes from its checkpoints and writes the same data as an uninterrupted one."""
    from physim.solvers import datagen

    cfg = DarcyDataConfig(out=tmp_path / "r.h5", n_samples=6, resolution=12, chunk=2, progress=False)
    calls = {"n": 0}
    real = datagen._solve_chunk

    def crash_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(datagen, "_solve_chunk", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg)
    assert not cfg.out.exists() and len(list((tmp_path / "r.h5.parts").glob("chunk_*.npz"))) == 2
    solved = []
    monkeypatch.setattr(datagen, "_solve_chunk", lambda c, b, r, order, s: solved.append(len(order)) or real(
        c, b, r, order, s))
    resumed = load_dataset(generate(cfg))
    assert solved == [2]
    fresh = load_dataset(generate(DarcyDataConfig(out=tmp_path / "f.h5", n_samples=6, resolution=12, chunk=2,
                                                  progress=False)))
    assert np.allclose(resumed["y"], fresh["y"], rtol=1e-5, atol=1e-7)
    # A resume folder from another config is refused.
    (tmp_path / "r2.h5.parts").mkdir()
    (tmp_path / "r2.h5.parts" / "config.json").write_text(json.dumps({"hash": "other"}))
    with pytest.raises(ConfigError, match=r"^out="):
        generate(DarcyDataConfig(out=tmp_path / "r2.h5", n_samples=2, resolution=8, progress=False))


def test_cli_group_and_bad_input(tmp_path, capsys):
    """Verify `physim data darcy` runs, an existing file is not overwritten, and bad values fail in one line."""
    out = tmp_path / "cli.h5"
    assert main(["data", "darcy", "--out", str(out), "--n-samples", "3", "--resolution", "8", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out and load_dataset(out)["x"].shape == (3, 8, 8)
    assert main(["data", "darcy", "--out", str(out), "--n-samples", "3", "--resolution", "8"]) == 2
    assert "out=" in capsys.readouterr().err
    # The direct solver factorises every sample's own matrix (a reused factor would fail the residual check).
    direct = tmp_path / "direct.h5"
    assert main(["data", "darcy", "--out", str(direct), "--n-samples", "3", "--resolution", "8", "--solver", "direct",
                 "--no-progress"]) == 0
    ds = load_dataset(direct)
    assert ds["converged"].all() and (ds["relative_residual"] < 1e-10).all()
    assert main(["data", "poisson", "--out", str(tmp_path / "p.h5"), "--rtol", "-1"]) == 2
    assert "physim: error: rtol=-1.0 is invalid" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"^preconditioner="):
        DarcyDataConfig(solver="cg", preconditioner="ilu")
    with pytest.raises(ConfigError, match=r"^k="):
        PoissonDataConfig(m=10, k=10)


def test_load_dataset_rejects_malformed_files(tmp_path):
    """Verify a missing, non-HDF5, wrong-schema or truncated file gives one error naming the file."""
    with pytest.raises(DataFileError, match="no such file"):
        load_dataset(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataFileError, match=r"junk\.h5: not a readable HDF5 file"):
        load_dataset(junk)
    good = generate(PoissonDataConfig(out=tmp_path / "g.h5", n_samples=2, resolution=8, progress=False))
    with h5py.File(good, "a") as h5:
        h5.attrs["schema"] = "other/0"
    with pytest.raises(DataFileError, match="schema"):
        load_dataset(good)
    with h5py.File(good, "a") as h5:
        h5.attrs["schema"] = SCHEMA
        del h5["y"]
    with pytest.raises(DataFileError, match=r"g\.h5: missing data set 'y'"):
        load_dataset(good)
