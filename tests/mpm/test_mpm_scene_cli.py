"""Verify scene files, the `physim sim` command, HDF5 trajectories (incl. resume) and rendering."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from physim.cli import main
from physim.mpm.recording import read_trajectory
from physim.mpm.scene import load_scene

REPO = Path(__file__).resolve().parents[2]
SCENES = sorted((REPO / "assets" / "scenes").glob("*.yaml"))

TINY = """
scene: {dim: 2, grid: 16, dt: 5.0e-4, substeps: 4, boundary: slip}
steps: 4
bodies:
  - name: jelly
    shape: {type: box, center: [0.4, 0.45], size: [0.2, 0.2]}
    material: {type: elastic, E: 1.0e4, nu: 0.3}
  - name: water
    shape: {type: box, center: [0.7, 0.35], size: [0.2, 0.2]}
    material: {type: newtonian, bulk_modulus: 1.0e4, density: 1000}
colliders:
  - {name: floor, type: plane, position: [0, 0.22], friction: 0.5}
  - {name: paddle, type: box, position: [0.4, 0.7], half_size: [0.05, 0.05], kinematic: true}
actions:
  paddle:
    - {steps: 2, linear: [0, -1.0, 0]}
"""


def test_shipped_scenes_load_and_build():
    """Verify the five shipped scenes validate and sample their particles."""
    names = {p.stem for p in SCENES}
    assert {"elastic_cube_drop", "sand_pile", "dam_break", "plasticine_press", "multi_material"} <= names
    for path in SCENES:
        scene = load_scene(path)
        sim = scene.simulator()
        assert sim.particle_count > 1000
    multi = load_scene(REPO / "assets/scenes/multi_material.yaml")
    assert [type(b.material).__name__ for b in multi.bodies] == ["NewtonianFluid", "DruckerPrager", "Elastic"]


def test_sim_command_writes_trajectory_and_videos(tmp_path):
    """Verify `physim sim` writes a complete, readable HDF5 file, a GIF and an MP4."""
    scene = tmp_path / "tiny.yaml"
    scene.write_text(TINY)
    out = tmp_path / "traj.h5"
    assert main(["sim", str(scene), "--out", str(out), "--video", str(tmp_path / "a.gif")]) == 0
    d = read_trajectory(out)
    assert d["x"].shape[0] == 5 and d["x"].shape[2] == 2
    assert d["attrs"]["bodies"][0]["material"]["type"] == "elastic"
    assert d["attrs"]["dt"] == 5e-4 and d["attrs"]["substeps"] == 4
    assert set(np.unique(d["material_id"])) == {0, 1}
    assert d["collider_pose"].shape == (5, 2, 7)
    assert d["collider_pose"][2, 1, 1] < d["collider_pose"][0, 1, 1]  # the paddle moved down
    assert (tmp_path / "a.gif").stat().st_size > 1000
    assert main(["sim", str(scene), "--steps", "2", "--out", str(tmp_path / "b.h5"), "--video",
                 str(tmp_path / "b.mp4")]) == 0
    assert (tmp_path / "b.mp4").stat().st_size > 1000


def test_interrupted_run_resumes_to_the_same_trajectory(tmp_path, monkeypatch):
    """Verify a run killed mid-way continues from its checkpoint and ends bit-identical to a straight run."""
    from physim.mpm.cli import SimConfig, run_sim
    from physim.mpm.simulator import Simulator

    scene = tmp_path / "tiny.yaml"
    scene.write_text(TINY)
    straight = run_sim(SimConfig(scene=scene, out=tmp_path / "straight.h5", checkpoint_every=2))
    calls = {"n": 0}
    real_step = Simulator.step

    def dying_step(self, state, action=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self, state, action)

    monkeypatch.setattr(Simulator, "step", dying_step)
    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        run_sim(SimConfig(scene=scene, out=out, checkpoint_every=2))
    assert not out.exists() and (tmp_path / "resumed.h5.partial").exists()
    monkeypatch.setattr(Simulator, "step", real_step)
    run_sim(SimConfig(scene=scene, out=out, checkpoint_every=2))
    a, b = read_trajectory(straight), read_trajectory(out)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["collider_pose"], b["collider_pose"])


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("E: 1.0e4", "E: -1.0e4"), "bodies[0].material.E"),
        (("type: elastic", "type: jello"), "bodies[0].material.type"),
        (("nu: 0.3", "nu: 0.3, stiffness: 2"), "bodies[0].material.stiffness"),
        (("steps: 4\n", "steps: 4\ncolour: red\n"), "colour"),
        (("boundary: slip", "boundary: bouncy"), "scene.boundary"),
        (("{steps: 2, linear", "{steps: 2, speed: 1, linear"), "actions.paddle[0].speed"),
    ],
)
def test_bad_scene_files_name_the_file_and_key(tmp_path, edit, key):
    """Verify a wrong value, unknown key or unknown material gives one ValueError naming file and key."""
    scene = tmp_path / "bad.yaml"
    scene.write_text(TINY.replace(*edit))
    with pytest.raises(ValueError) as info:
        load_scene(scene)
    assert str(scene) in str(info.value) and key in str(info.value)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    """Verify `physim sim` prints one error line and exits 2 for a bad scene file."""
    scene = tmp_path / "bad.yaml"
    scene.write_text(TINY.replace("E: 1.0e4", "E: 0"))
    assert main(["sim", str(scene), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bodies[0].material.E" in err[0]


def test_malformed_trajectory_file_is_refused(tmp_path):
    """Verify reading a file that is not a complete trajectory names the file and the problem."""
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("x", data=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"bad\.h5: not an MPM trajectory \(missing datasets v"):
        read_trajectory(bad)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="junk.h5: not a readable HDF5 file"):
        read_trajectory(tmp_path / "junk.h5")
