"""Verify the distribution layout: mapped subpackages, lazy backends, an installable wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import REPO, run_python

BACKENDS = ("warp", "taichi", "dolfinx", "torch_geometric", "e3nn", "meshio", "h5py")


def test_import_physim_loads_no_backend():
    """Verify that `import physim` (and its lightweight subpackages) import no backend."""
    code = (
        "import sys, json, physim, physim.springs, physim.autodiff, physim.runtime, physim.testing;"
        f"print(json.dumps([m for m in {BACKENDS!r} if m in sys.modules]))"
    )
    res = run_python("-c", code)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_mapped_packages_import_from_physim_namespace():
    """Verify that operators/ and envs/ are importable only as physim.operators and physim.envs."""
    import physim.envs
    import physim.operators

    assert Path(physim.operators.__file__).parent == REPO / "operators"
    assert Path(physim.envs.__file__).parent == REPO / "envs"
    res = run_python("-c", "import operators", cwd="/")
    assert res.returncode != 0 or "site-packages" not in res.stdout


def test_wheel_installs_into_scratch_venv_outside_repo(tmp_path):
    """Verify that a built wheel, installed into a fresh venv, provides physim.operators and physim.envs."""
    wheel_dir = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheel_dir.glob("physim_diff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"physim"}, f"wheel installs top-level names {sorted(tops)}: expected only 'physim'"
    assert "physim/operators/__init__.py" in names and "physim/envs/__init__.py" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert inst.returncode == 0, inst.stdout + inst.stderr
    # Dependencies come from the dev venv's site-packages as a plain path entry: its .pth files
    # (the editable install's finder among them) are not executed, so only the wheel provides physim.
    vsite = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    Path(vsite, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = "import physim, physim.operators, physim.envs, physim.springs; print(physim.__file__)"
    res = subprocess.run([str(vpy), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(vsite), f"physim imported from {res.stdout.strip()}, not the wheel"
