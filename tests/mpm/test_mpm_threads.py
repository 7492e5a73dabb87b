"""Verify the untaped CPU substep split over several threads (`SceneConfig.cpu_threads`).

Several workers scatter into their own grid copies, which the grid update sums in a fixed
order: trajectories agree with one thread up to round-off (float64 here: 1e-10 of the scale)
and are bitwise the same from run to run with the same thread count.
"""

from __future__ import annotations

import pytest
import torch

from physim.mpm import (
    Body,
    Box,
    BoxCollider,
    Elastic,
    NewtonianFluid,
    PlaneCollider,
    SceneConfig,
    Simulator,
    VonMises,
)
from physim.mpm import threads as mpm_threads

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIELDS = ("x", "v", "C", "F", "collider_force", "collider_torque")


def _sim(kind: str, threads: int | None) -> Simulator:
    # float64 2D: the kernel variants the other MPM tests compile; about 3,400 particles, enough
    # for three workers of MIN_PARTICLES each
    cfg = SceneConfig(dim=2, grid=48, dt=1e-4, substeps=8, dtype="float64", cpu_threads=threads)
    box = Box(center=(0.45, 0.45), size=(0.6, 0.6))
    cols = []
    if kind == "fluid":
        mats = [NewtonianFluid(bulk_modulus=2e3, density=1e3, viscosity=0.2)]
    elif kind == "elastic":
        mats = [Elastic(E=2e4, nu=0.3, density=1e3)]
    else:  # two materials, a static floor with friction and a kinematic pusher
        mats = [VonMises(E=2e4, nu=0.3, density=1e3, yield_stress=200.0), NewtonianFluid(bulk_modulus=2e3,
                                                                                        density=1e3)]
        cols = [PlaneCollider(name="floor", position=(0.0, 0.2, 0.0), friction=0.4),
                BoxCollider(name="pusher", position=(0.45, 0.8, 0.0), half_size=(0.1, 0.05, 0.1), kinematic=True)]
    if len(mats) == 1:
        bodies = [Body(shape=box, material=mats[0], velocity=(0.8, -1.0))]
    else:
        bodies = [Body(name="a", shape=Box(center=(0.3, 0.45), size=(0.3, 0.6)), material=mats[0], velocity=(1, -1)),
                  Body(name="b", shape=Box(center=(0.6, 0.45), size=(0.3, 0.6)), material=mats[1], velocity=(-1, 0))]
    return Simulator(cfg, bodies, cols)


def _run(sim: Simulator, steps: int = 3):
    s = sim.reset()
    act = None
    if sim.colliders:
        act = torch.zeros(sim.action_shape, dtype=torch.float64)
        act[0, 1] = -0.5  # the pusher moves down into the bodies
    out = []
    with torch.no_grad():
        for _ in range(steps):
            s = sim.step(s, act)
            out.append(s)
    return out


def _count_phases(monkeypatch) -> list:
    calls: list = []
    run = mpm_threads.WorkerPool.run

    def counted(self, tasks):
        calls.append(len(tasks))
        run(self, tasks)

    monkeypatch.setattr(mpm_threads.WorkerPool, "run", counted)
    return calls


@pytest.mark.parametrize("kind", ["fluid", "elastic", "colliders"])
def test_threaded_substeps_match_one_thread(kind, monkeypatch):
    """Verify 2 and 3 threads give the 1-thread trajectory within 1e-10 of its scale, and really split."""
    ref = _run(_sim(kind, 1))
    calls = _count_phases(monkeypatch)
    for k in (2, 3):
        sim = _sim(kind, k)
        got = _run(sim)
        assert sim._backend.particle_workers == k
        for a, b in zip(ref, got, strict=True):
            for name in FIELDS:
                ta, tb = getattr(a, name), getattr(b, name)
                if ta.numel() == 0:  # no colliders
                    continue
                tol = 1e-10 * max(1.0, float(ta.abs().max()))
                assert torch.allclose(ta, tb, rtol=0.0, atol=tol), (k, name, float((ta - tb).abs().max()))
        assert calls and max(calls) == k  # the phases ran on k threads
        calls.clear()
    if kind == "colliders":
        assert float(ref[-1].collider_force.abs().max()) > 0.0  # contacts happened: forces are compared


@pytest.mark.parametrize("material", ["fluid", "elastic"])
def test_threaded_substeps_match_one_thread_in_3d(material, monkeypatch):
    """Verify 2 threads give the 1-thread trajectory in 3D (1e-10 of its scale) in two hand-overs per substep.

    The threaded grid update finds its blocks from the gathers' flags (a block is updated when a
    particle's stencil base lies in it or in a block one lower along any set of axes): a block
    missed there would drop its mass and momentum, far beyond round-off.
    """
    from physim.mpm import Sphere

    def run(threads):
        cfg = SceneConfig(dim=3, grid=20, dt=2e-4, substeps=6, dtype="float64", gravity=(0.0, -9.8, 0.0),
                          cpu_threads=threads)
        law = NewtonianFluid(bulk_modulus=2e3, density=1e3) if material == "fluid" else Elastic(E=2e4, nu=0.3)
        sim = Simulator(cfg, [Body(shape=Sphere(center=(0.48, 0.5, 0.52), radius=0.3), material=law)])
        s = sim.reset()
        r = s.x - 0.5
        v = torch.stack([-4.0 * r[:, 1] + 0.3, 4.0 * r[:, 0], 0.5 * r[:, 2] - 0.2], dim=1)
        s = sim.reset(v=v)
        with torch.no_grad():
            for _ in range(3):
                s = sim.step(s)
        return sim, s

    _, ref = run(1)
    calls = _count_phases(monkeypatch)
    sim, got = run(2)
    assert sim._backend.particle_workers == 2
    # per step: a scatter phase and a grid phase per substep, and the final gather
    assert calls == [2] * (3 * (2 * 6 + 1))
    for name in ("x", "v", "C", "F"):
        ta, tb = getattr(ref, name), getattr(got, name)
        tol = 1e-10 * max(1.0, float(ta.abs().max()))
        assert torch.allclose(ta, tb, rtol=0.0, atol=tol), (name, float((ta - tb).abs().max()))


@pytest.mark.parametrize("kind", ["fluid", "colliders"])
def test_threaded_substeps_are_deterministic(kind):
    """Verify two runs with the same thread count are bitwise identical."""
    a, b = _run(_sim(kind, 2), steps=2), _run(_sim(kind, 2), steps=2)
    for sa, sb in zip(a, b, strict=True):
        for name in FIELDS:
            assert torch.equal(getattr(sa, name), getattr(sb, name)), name


def test_thread_count_from_the_environment(monkeypatch):
    """Verify PHYSIM_CPU_THREADS sets the default and the config overrides it."""
    monkeypatch.setenv("PHYSIM_CPU_THREADS", "2")
    assert _sim("fluid", None).cpu_threads == 2
    assert _sim("fluid", 1).cpu_threads == 1
    monkeypatch.delenv("PHYSIM_CPU_THREADS")
    assert _sim("fluid", None).cpu_threads == 1


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", 10_000])
def test_bad_thread_count_is_rejected(value):
    """Verify a thread count that is not an integer from 1 to 256 is one ValueError naming the field."""
    with pytest.raises(ValueError, match="cpu_threads") as e:
        SceneConfig(dim=2, grid=16, cpu_threads=value)
    assert repr(value) in str(e.value) or str(value) in str(e.value)


@pytest.mark.parametrize("raw", ["0", "two", "1.5", "-3"])
def test_bad_thread_count_in_the_environment_is_rejected(raw, monkeypatch):
    """Verify a bad PHYSIM_CPU_THREADS fails when the simulator is built (before any kernel runs)."""
    monkeypatch.setenv("PHYSIM_CPU_THREADS", raw)
    with pytest.raises(ValueError, match="PHYSIM_CPU_THREADS"):
        _sim("fluid", None)


def test_worker_errors_reach_the_caller():
    """Verify an exception in a worker is raised by `run` after all tasks finished, and the pool still works."""
    pool = mpm_threads.WorkerPool(3)
    done = []

    def boom():
        raise RuntimeError("worker failed")

    with pytest.raises(RuntimeError, match="worker failed"):
        pool.run([lambda: done.append(0), boom, lambda: done.append(2)])
    assert sorted(done) == [0, 2]
    pool.run([lambda: done.append(3), lambda: done.append(4)])
    assert sorted(done) == [0, 2, 3, 4]
