"""Verify that bad configurations, masks, states and actions fail before any kernel runs, naming the culprit."""

from __future__ import annotations

import pytest
import torch
from conftest import run_python
from gas_helpers import F64, small_config

from physim.errors import ConfigError
from physim.gas import FanConfig, GasConfig, GasSimulator, circulation_config, circulation_solid

FAN = FanConfig(center=(0.5, 0.5), direction=(0.0, 1.0))


@pytest.mark.parametrize(("field", "kwargs"), [
    ("resolution", {"resolution": (8,)}),
    ("resolution", {"resolution": (8, 8, 8, 8)}),
    ("resolution[1]", {"resolution": (8, 1)}),
    ("resolution[0]", {"resolution": (8.5, 8)}),
    ("cell_size", {"cell_size": 0.0}),
    ("dt", {"dt": -0.01}),
    ("dt", {"dt": float("nan")}),
    ("substeps", {"substeps": 0}),
    ("smoke_channels", {"smoke_channels": 0}),
    ("advection", {"advection": "upwind"}),
    ("backtrace", {"backtrace": "rk4"}),
    ("solver", {"solver": "multigrid"}),
    ("jacobi_iterations", {"jacobi_iterations": -1}),
    ("jacobi_omega", {"jacobi_omega": 0.0}),
    ("jacobi_omega", {"jacobi_omega": 1.5}),
    ("cg_tolerance", {"cg_tolerance": 0.0}),
    ("cg_max_iterations", {"cg_max_iterations": 0}),
    ("warm_start", {"warm_start": "yes"}),
    ("smoke_dissipation", {"smoke_dissipation": -1.0}),
    ("velocity_dissipation", {"velocity_dissipation": float("inf")}),
    ("fan_profile", {"fan_profile": "box"}),
    ("up_axis", {"up_axis": 2}),
    ("dtype", {"dtype": "float16"}),
    ("fans", {"fans": FAN}),
    ("fans[0]", {"fans": ({"center": (0.5, 0.5)},)}),
    ("fans[0].center", {"fans": (FanConfig(center=(0.5, 0.5, 0.5), direction=(0.0, 1.0)),)}),
    ("fans[0].direction[1]", {"fans": (FanConfig(center=(0.5, 0.5), direction=(0.0, float("nan"))),)}),
    ("fans[0].radius", {"fans": (FanConfig(center=(0.5, 0.5), direction=(0.0, 1.0), radius=0.0),)}),
    ("fans[0].mix", {"fans": (FanConfig(center=(0.5, 0.5), direction=(0.0, 1.0), mix=1.5),)}),
    ("fans[0].emit", {"fans": (FanConfig(center=(0.5, 0.5), direction=(0.0, 1.0), emit=(1.0, 0.0)),)}),
])
def test_bad_config_values_raise_naming_the_field(field, kwargs):
    """Verify that each bad value raises a ValueError whose message starts with the field's name and value."""
    cfg = {"resolution": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=r"^" + field.replace("[", r"\[").replace("]", r"\]") + "=") as err:
        GasConfig(**cfg)
    assert isinstance(err.value, ConfigError) and "expected" in str(err.value)


def test_unknown_config_keys_are_rejected():
    """Verify that a misspelt option is an error, not silently ignored."""
    with pytest.raises(TypeError, match="jacobi_iteration"):
        GasConfig(jacobi_iteration=10)


def test_bad_simulator_inputs_raise_before_any_kernel():
    """Verify errors for a wrong solid mask, state shapes, action shapes, NaN actions and out-of-range fan settings."""
    with pytest.raises(ValueError, match=r"^solid=\(8, 9\) is invalid"):
        GasSimulator(GasConfig(resolution=(8, 8)), solid=torch.zeros(8, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="^solid="):
        GasSimulator(GasConfig(resolution=(8, 8)), solid=torch.ones(8, 8, dtype=torch.bool))
    sim = GasSimulator(small_config())
    s = sim.reset()
    with pytest.raises(ValueError, match=r"^velocity=\(10, 12, 3\)"):
        sim.reset(velocity=torch.zeros(10, 12, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"^action=\(2, 10\) is invalid: expected a tensor of shape \(1, 8\)"):
        sim.step(s, torch.zeros(2, 10, dtype=F64))
    bad = sim.default_action().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^action='NaN or inf'"):
        sim.step(s, bad)
    with pytest.raises(ValueError, match="radius > 0"):
        sim.step(s, sim.fan_action(radius=-0.1))
    with pytest.raises(ValueError, match=r"mix in \[0, 1\]"):
        sim.step(s, sim.fan_action(mix=2.0))
    with pytest.raises(ValueError, match="^actions="):
        sim.rollout(s, sim.default_action())
    with pytest.raises(ValueError, match="^speed="):
        sim.fan_action(speed=1.0)
    with pytest.raises(ValueError, match="^center="):
        sim.fan_action(center=torch.zeros(3, dtype=F64))


def test_fan_action_builds_rows_differentiably():
    """Verify that fan_action replaces the named columns, keeps the rest, and passes gradients through."""
    sim = GasSimulator(small_config())
    cols = sim.action_columns
    strength = torch.tensor(2.5, dtype=F64, requires_grad=True)
    a = sim.fan_action(strength=strength, center=torch.tensor([0.2, 0.3], dtype=F64))
    assert a.shape == (1, sim.cfg.action_width) == (1, 8)
    row = a.detach()[0]
    assert float(row[cols["strength"]]) == 2.5 and row[cols["center"]].tolist() == [0.2, 0.3]
    assert torch.equal(a[0, cols["direction"]], sim.default_action()[0, cols["direction"]])
    a.sum().backward()
    assert float(strength.grad) == 1.0


def test_circulation_presets():
    """Verify FluidLab's Circulation grid: 128³ / dt 0.03 / 50 Jacobi sweeps at paper quality; the slab mask."""
    paper, cpu = circulation_config("paper"), circulation_config("cpu")
    assert paper.resolution == (128, 128, 128) and paper.dt == 0.03 and paper.jacobi_iterations == 50
    assert cpu.resolution == (32, 32, 32) and paper.fans[0].radius == pytest.approx(2 / 128)
    free = ~circulation_solid(paper)
    assert torch.nonzero(free[0, :, 0]).flatten().tolist() == list(range(61, 68))
    assert torch.nonzero((~circulation_solid(cpu))[0, :, 0]).flatten().tolist() == [15, 16]
    with pytest.raises(ValueError, match="^quality="):
        circulation_config("gpu")


def test_importing_physim_gas_loads_no_backend():
    """Verify that `import physim.gas` (configs, presets, geometry) imports neither Taichi nor matplotlib."""
    res = run_python("-c", "import sys, json, physim.gas; print(json.dumps([m for m in ('taichi', 'warp', "
                     "'matplotlib', 'imageio') if m in sys.modules]))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
