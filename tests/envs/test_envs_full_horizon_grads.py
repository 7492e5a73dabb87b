"""Full-horizon gradients of the jet and pouring tasks in float32 (slow): finite.

These were NaN (Transporting, Stabilizing) and 7e8 (Pouring) while the domain walls leaked
the adjoint in scenes with colliders (see tests/mpm/test_mpm_wall_adjoint.py). Together about
two and a half minutes of CPU time (`make test-all`).
"""

from __future__ import annotations

import gymnasium as gym
import physim.envs  # noqa: F401  (registers the ids)
import pytest
import torch
from physim.envs.fluid.registry import env_id


@pytest.mark.slow
@pytest.mark.parametrize("task", ["Transporting", "Stabilizing", "Pouring"])
def test_full_horizon_float32_gradient_of_demo_is_finite(task):
    """Verify rollout_loss(demo).backward() over the whole horizon in float32 gives a finite gradient."""
    env = gym.make(env_id(task), dtype="float32")
    u = env.unwrapped
    env.reset(seed=0)
    a = torch.as_tensor(u.demo_actions()).requires_grad_(True)
    u.rollout_loss(a).backward()
    bad = (~torch.isfinite(a.grad).all(dim=1)).nonzero().squeeze(1)
    assert bad.numel() == 0, f"non-finite gradient at control steps {bad[:3].tolist()}..{bad[-3:].tolist()}"
    assert float(a.grad.abs().sum()) > 0
