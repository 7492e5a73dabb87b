"""Tests of physim.io.fingerprint (source digests that key caches of simulated data)."""

from __future__ import annotations

import sys

from physim.io.fingerprint import source_digest


def test_source_digest_changes_with_a_source_file(tmp_path, monkeypatch):
    """Verify that the digest is stable for unchanged sources and changes when one file changes."""
    pkg = tmp_path / "fp_probe_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "law.py").write_text("K = 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fp_probe_pkg", raising=False)
    first = source_digest.__wrapped__("fp_probe_pkg")
    assert source_digest.__wrapped__("fp_probe_pkg") == first and len(first) == 64
    (pkg / "sub" / "law.py").write_text("K = 2.0\n")
    assert source_digest.__wrapped__("fp_probe_pkg") != first


def test_source_digest_of_the_engine_is_cached_and_distinct():
    """Verify that different package sets give different digests (the MPM alone vs MPM + fluid tasks)."""
    a = source_digest("physim.mpm")
    assert source_digest("physim.mpm") is a
    assert source_digest("physim.mpm", "physim.envs.fluid") != a
