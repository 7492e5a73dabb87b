"""Verify learning through physim.mpm: rollout gradients reach the weights (FD-checked), training lowers
the loss and resumes, learned-law files load into scenes, NaN stress is reported, trajectory files are checked."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("physim.mpm", reason="NCLaw's training tests need physim.mpm (the MPM engine)")

from nclaw_helpers import single_thread  # noqa: F401 (fixture)
from physim.operators.nclaw import InvariantElasticLaw, NeuralConstitutiveLaw, NeuralPlasticity, load_material
from physim.operators.nclaw.data import (
    Trajectory,
    TrajectoryFileError,
    generate_trajectory,
    load_trajectory,
    save_trajectory,
)
from physim.operators.nclaw.evaluate import relative_error
from physim.operators.nclaw.fit import FitConfig, build_model, fit, model_material, window_loss
from physim.operators.nclaw.scenes import (
    FLOOR_HEIGHT,
    SceneSpec,
    colliders_for_case,
    ground_truth_material,
    make_simulator,
)

from physim.errors import ConfigError, SimulationDiverged
from physim.mpm import Body, Box, NeuralMaterial, SceneConfig, Simulator
from physim.testing import assert_grad_matches_fd

pytestmark = pytest.mark.usefixtures("single_thread")


# A tiny 2D scene: ~20 particles landing at once, 4 control steps of 2 substeps.
TINY = SceneSpec(grid=24, particles_per_cell=1, steps=4, substeps=2, dt=1e-3, box=0.2, gap=0.0)


def _perturbed(module, scale=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def test_rollout_gradient_reaches_the_weights_and_matches_fd():
    """Verify d(loss)/d(weights) through a float64 MPM rollout against central differences."""
    stress = _perturbed(InvariantElasticLaw(dim=2, width=8, youngs_modulus=1e5, poisson_ratio=0.2).double())
    plastic = _perturbed(NeuralPlasticity(dim=2, width=8, yield_strain=0.005).double(), scale=0.02, seed=1)
    law = NeuralConstitutiveLaw.from_parts(stress, plastic, density=1e3)
    cfg = SceneConfig(dim=2, grid=24, dt=5e-4, substeps=3, dtype="float64")
    # Thrown onto the floor collider from just above it, so that the particles deform from the first substeps.
    body = Body(name="jelly", shape=Box(center=(0.5, FLOOR_HEIGHT + 0.11), size=(0.2, 0.2)), velocity=(0.5, -3.0),
                material=NeuralMaterial(stress=law.stress, plastic=law.plastic, density=1e3, wave_speed_bound=15.0),
                particles_per_cell=1)
    sim = Simulator(cfg, [body], colliders_for_case("train", TINY))

    class RolloutLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.law = law

        def forward(self):
            out = sim.rollout(sim.reset(), steps=4, observe=lambda t, s: s.x)
            return out.observations

    wrapper = RolloutLoss()
    names = [n for n, _ in wrapper.named_parameters()]
    values = [p.detach().clone() for p in wrapper.parameters()]
    x = wrapper()
    grads = torch.autograd.grad(x.square().sum(), list(wrapper.parameters()), allow_unused=True)
    reached = [n for n, g in zip(names, grads) if g is not None and g.abs().sum() > 0]
    assert any(n.startswith("law.stress.head") for n in reached), reached
    assert any(n.startswith("law.plastic.net") for n in reached), reached

    def positions(*ps):
        return torch.func.functional_call(wrapper, dict(zip(names, ps)), ())

    assert_grad_matches_fd(positions, values, n_directions=1, eps=1e-6, rtol=1e-4, atol=1e-9,
                           wrt=[names.index("law.stress.head.net.4.weight"), names.index("law.plastic.net.0.weight"),
                                names.index("law.stress.log_mu")])


def test_learned_law_file_loads_into_a_scene_and_reproduces_the_rollout(tmp_path):
    """Verify a saved law, loaded with load_material into a new scene, gives the same trajectory."""
    law = _perturbed(build_model("invariant", "jelly", TINY, width=8))
    path = law.save(tmp_path / "jelly.pt")

    def run(material):
        sim = make_simulator("train", TINY, {"main": material})
        with torch.no_grad():
            return sim.rollout(sim.reset(), steps=3, observe=lambda t, s: s.x).observations

    assert torch.equal(run(model_material(law)), run(load_material(path, wave_speed_bound=20.0)))


def test_nan_stress_raises_simulation_diverged_with_the_substep():
    """Verify a network that starts returning NaN stress stops the rollout with its substep index."""

    class Poisoned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1e3))
            self.calls = 0

        def forward(self, F):
            self.calls += 1
            out = self.scale * (F - torch.eye(2))
            return out * math.nan if self.calls >= 3 else out

    cfg = SceneConfig(dim=2, grid=24, dt=1e-3, substeps=2)
    body = Body(shape=Box(center=(0.5, 0.5), size=(0.2, 0.2)), particles_per_cell=1,
                material=NeuralMaterial(stress=Poisoned(), density=1e3, wave_speed_bound=5.0))
    sim = Simulator(cfg, [body])
    with pytest.raises(SimulationDiverged) as info:
        sim.rollout(sim.reset(), steps=3)
    assert info.value.substep == 3


def test_fit_lowers_the_loss_and_resumes(tmp_path):
    """Verify training on a tiny trajectory lowers the full-rollout loss, and a rerun resumes, not restarts."""
    sim = make_simulator("train", TINY, {"main": ground_truth_material("jelly")})
    traj = generate_trajectory(sim, TINY.steps, {"material": "jelly", "case": "train"})
    cfg = FitConfig(variant="analytic", epochs=3, window_min=2, progress=False)
    first = fit("jelly", traj, TINY, cfg, tmp_path / "run")
    assert [int(r["window"]) for r in first.history] == [2, 4, 4]
    again = fit("jelly", traj, TINY, FitConfig(variant="analytic", epochs=4, window_min=2, progress=False),
                tmp_path / "run")
    assert len(again.history) == 4 and again.history[:3] == first.history
    losses = [r["valid_loss"] for r in again.history]
    assert losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "run" / "fitted.json").is_file()


def test_fit_refuses_a_trajectory_of_another_scene():
    """Verify a trajectory whose particles do not match the training scene is one ConfigError."""
    sim = make_simulator("train", TINY, {"main": ground_truth_material("jelly")})
    traj = generate_trajectory(sim, 2, {})
    with pytest.raises(ConfigError, match="trajectory"):
        fit("jelly", traj, TINY, FitConfig(variant="analytic", epochs=1, progress=False), "unused")


def test_trajectory_files_round_trip_and_bad_files_name_the_file(tmp_path):
    """Verify HDF5 trajectories round-trip and missing/truncated/foreign/torn files give one clear error."""
    sim = make_simulator("train", TINY, {"main": ground_truth_material("jelly")})
    traj = generate_trajectory(sim, 2, {"material": "jelly", "case": "train"})
    path = save_trajectory(tmp_path / "t.h5", traj)
    back = load_trajectory(path)
    assert torch.equal(back.x, traj.x.float()) and back.meta["material"] == "jelly" and back.steps == 2
    with pytest.raises(TrajectoryFileError, match=r"missing\.h5: no such file"):
        load_trajectory(tmp_path / "missing.h5")
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(TrajectoryFileError, match=r"cut\.h5: "):
        load_trajectory(tmp_path / "cut.h5")
    (tmp_path / "foreign.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(TrajectoryFileError, match=r"foreign\.h5: not a readable HDF5 file"):
        load_trajectory(tmp_path / "foreign.h5")
    bad = Trajectory(x=traj.x, v=traj.v[:, :3], C=traj.C, F=traj.F, material_id=traj.material_id, meta={})
    save_trajectory(tmp_path / "torn.h5", bad)
    with pytest.raises(TrajectoryFileError, match=r"torn\.h5: v has shape"):
        load_trajectory(tmp_path / "torn.h5")


def test_relative_error_is_zero_for_the_truth_and_checks_shapes():
    """Verify the generalisation metric: 0 for the ground truth, displacement-relative, shape-checked."""
    gt = torch.zeros(3, 2, 2)
    gt[1:, :, 0] = torch.tensor([1.0, 2.0])[:, None]
    assert relative_error(gt[1:], gt) == 0.0
    assert relative_error(gt[1:] + torch.tensor([0.0, 0.15]), gt) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="x_pred"):
        relative_error(gt, gt)


def test_five_epochs_on_a_2k_particle_jelly_lower_the_loss(tmp_path):
    """Verify five epochs of NCLaw (invariant) on a ~2000-particle jelly trajectory lower the rollout loss."""
    spec = SceneSpec(grid=64, particles_per_cell=4, steps=10, substeps=4, dt=5e-4, box=0.35, gap=0.0)
    sim = make_simulator("train", spec, {"main": ground_truth_material("jelly")})
    assert 1800 <= sim.particle_count <= 2400
    traj = generate_trajectory(sim, spec.steps, {"material": "jelly", "case": "train"})
    model = build_model("invariant", "jelly", spec)
    sim_model = make_simulator("train", spec, {"main": model_material(model)})
    with torch.no_grad():
        before = float(window_loss(sim_model, model, traj, spec.steps, 4))
    result = fit("jelly", traj, spec, FitConfig(variant="invariant", epochs=5, window_min=4, progress=False),
                 tmp_path / "run")
    after = min(r["valid_loss"] for r in result.history)
    assert after < 0.5 * before, (before, [r["valid_loss"] for r in result.history])
