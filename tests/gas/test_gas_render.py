"""Verify the quick-look renderer: PNG and GIF files are written atomically and show the smoke."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from physim.gas import FanConfig, GasConfig, GasSimulator, box_mask, render_gif, render_slice, slice_frame


@pytest.fixture(scope="module")
def plume():
    cfg = GasConfig(resolution=(12, 10, 6), cell_size=0.1, dt=0.05, buoyancy=2.0, jacobi_iterations=30,
                    fans=(FanConfig(center=(0.6, 0.2, 0.3), direction=(0.0, 1.0, 0.0), strength=5.0, radius=0.15,
                                    mix=0.8),))
    sim = GasSimulator(cfg, solid=box_mask(cfg.resolution, 0.1, (0.0, 0.6, 0.0), (0.3, 0.8, 0.6)))
    states = [sim.reset()]
    for _ in range(4):
        states.append(sim.step(states[-1]))
    return sim, states


def test_png_of_a_horizontal_slice(plume, tmp_path):
    """Verify a PNG of the y-slice through the fan is written, is an RGB image, and leaves no temporary file."""
    sim, states = plume
    path = render_slice(states[-1], tmp_path / "slice.png", sim=sim, axis=1, index=2, quantity="smoke")
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.shape[0] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slice.png"]
    for quantity in ("speed", "vorticity", "pressure"):
        frame = slice_frame(states[-1], sim=sim, quantity=quantity, arrows=False)
        assert frame.dtype == np.uint8 and frame.std() > 0


def test_gif_of_a_rollout(plume, tmp_path):
    """Verify a GIF has one frame per state and that its frames differ as the smoke spreads."""
    sim, states = plume
    path = render_gif(states, tmp_path / "plume.gif", sim=sim, axis=2, fps=10)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == len(states)
    assert float(np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean()) > 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plume.gif"]


def test_bad_render_arguments(plume, tmp_path):
    """Verify bad quantity, axis, index or channel raise naming the argument, and write nothing."""
    _, states = plume
    for kwargs, field in (({"quantity": "density"}, "quantity"), ({"axis": 3}, "axis"), ({"index": 99}, "index"),
                          ({"channel": 2}, "channel")):
        with pytest.raises(ValueError, match=f"^{field}="):
            render_slice(states[-1], tmp_path / "x.png", **kwargs)
    with pytest.raises(ValueError, match="^states="):
        render_gif([], tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())
    assert torch.is_tensor(states[-1].smoke)
