"""Verify checkpointed_rollout on pure-torch steps, and that the gradient check can fail."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from physim.autodiff import checkpointed_rollout
from physim.testing import assert_grad_matches_fd


@dataclass(frozen=True)
class Pendulum:
    theta: torch.Tensor
    omega: torch.Tensor
    label: str = "p"


def pendulum_step(s: Pendulum, torque, length):
    dt = 0.01
    omega = s.omega + dt * (-9.81 / length * torch.sin(s.theta) + torque)
    return Pendulum(theta=s.theta + dt * omega, omega=omega, label=s.label)


def _run(k, theta0, torques, length):
    s0 = Pendulum(theta=theta0, omega=torch.zeros_like(theta0))
    out = checkpointed_rollout(pendulum_step, s0, torques, (length,), checkpoint_every=k,
                               observe=lambda t, s: torch.cos(s.theta))
    return out.state.theta, out.observations


@pytest.mark.parametrize("k", [None, 1, 5, 40, 100])
def test_dataclass_state_gradients_match_fd(k):
    """Verify gradients through a dataclass state for several K, including K > T."""
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(3, generator=gen, dtype=torch.float64), torch.randn(40, 3, generator=gen,
              dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64)]
    assert_grad_matches_fd(lambda *a: _run(k, *a), inputs, rtol=1e-6, atol=1e-10)


def test_all_k_agree_and_state_structure_is_kept():
    """Verify that non-tensor fields survive and every K gives the same gradient."""
    theta0 = torch.tensor([0.3, 1.0], dtype=torch.float64)
    torques = torch.linspace(-1, 1, 33, dtype=torch.float64)[:, None].repeat(1, 2)
    length = torch.tensor([2.0], dtype=torch.float64)
    grads = []
    for k in (None, 1, 4, 33):
        leaves = [x.clone().requires_grad_(True) for x in (theta0, torques, length)]
        theta, obs = _run(k, *leaves)
        grads.append(torch.autograd.grad(theta.sum() + obs.sum(), leaves))
    for g in grads[1:]:
        for a, b in zip(grads[0], g):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    out = checkpointed_rollout(pendulum_step, Pendulum(theta0, theta0 * 0, "x"), torques, (length,),
                               checkpoint_every=4)
    assert out.state.label == "x" and out.checkpoints == 9 and out.observations is None


def _run_kept(k, keep, theta0, torques, length, calls=None):
    def step(s, torque, length):
        if calls is not None:
            calls.append(torch.is_grad_enabled())
        return pendulum_step(s, torque, length)

    s0 = Pendulum(theta=theta0, omega=torch.zeros_like(theta0))
    out = checkpointed_rollout(step, s0, torques, (length,), checkpoint_every=k, keep_last=keep,
                               observe=lambda t, s: torch.cos(s.theta))
    return out.state.theta, out.observations


@pytest.mark.parametrize(("k", "keep"), [(4, 9), (5, 30), (4, 33), (3, 100)])
def test_kept_tail_gives_the_same_gradient_and_is_not_recomputed(k, keep):
    """Verify that keeping the last steps' graph changes neither values nor gradients, and skips their replay."""
    theta0 = torch.tensor([0.3, 1.0], dtype=torch.float64)
    torques = torch.linspace(-1, 1, 33, dtype=torch.float64)[:, None].repeat(1, 2)
    length = torch.tensor([2.0], dtype=torch.float64)
    ref, got = [], []
    for kk, kp, out in ((None, 0, ref), (k, keep, got)):
        leaves = [x.clone().requires_grad_(True) for x in (theta0, torques, length)]
        calls: list[bool] = []
        theta, obs = _run_kept(kk, kp, *leaves, calls=calls)
        grads = torch.autograd.grad(theta.sum() + obs.sum(), leaves)
        out.append((theta.detach(), obs.detach(), grads, calls))
    (t0, o0, g0, _), (t1, o1, g1, calls) = ref[0], got[0]
    assert torch.equal(t0, t1) and torch.equal(o0, o1)  # the forward values are bitwise the same
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    kept = min(keep, 33)
    # 33 steps forward, then only the first 33 − M steps again, with gradients
    assert len(calls) == 33 + (33 - kept if kept < 33 else 0)
    assert sum(calls) == 33 if kept < 33 else len(calls) == 33


def test_kept_tail_gradients_match_fd():
    """Verify a rollout with checkpoints and a kept tail against finite differences (gradient w.r.t. every input)."""
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.rand(3, generator=gen, dtype=torch.float64), torch.randn(20, 3, generator=gen,
              dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64)]
    assert_grad_matches_fd(lambda *a: _run_kept(3, 7, *a), inputs, rtol=1e-6, atol=1e-10)


def test_kept_tail_without_gradients_builds_no_graph():
    """Verify that under no_grad (or with no input requiring a gradient) no step runs with a graph."""
    theta0 = torch.tensor([0.3], dtype=torch.float64)
    torques = torch.zeros(10, 1, dtype=torch.float64)
    length = torch.tensor([2.0], dtype=torch.float64)
    calls: list[bool] = []
    theta, _ = _run_kept(3, 5, theta0, torques, length, calls=calls)
    assert not theta.requires_grad and not any(calls) and len(calls) == 10
    with pytest.raises(ValueError, match="keep_last=-1 is invalid"):
        _run_kept(3, -1, theta0, torques, length)


def test_passive_system_without_actions():
    """Verify a rollout with actions=None and a tuple state."""

    def step(state, action, rate):
        assert action is None
        x, y = state
        return (x * rate, y + x)

    rate = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    x0 = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    out = checkpointed_rollout(step, (x0, torch.zeros((), dtype=torch.float64)), None, (rate,),
                               checkpoint_every=3, steps=10)
    out.state[1].backward()
    # y_10 = x0 * sum_{i<10} rate^i
    assert float(out.state[1].detach()) == pytest.approx(sum(0.9**i for i in range(10)))
    assert float(x0.grad) == pytest.approx(sum(0.9**i for i in range(10)))
    assert float(rate.grad) == pytest.approx(sum(i * 0.9 ** (i - 1) for i in range(1, 10)))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"checkpoint_every": 0}, "checkpoint_every=0 is invalid"),
    ({"checkpoint_every": 2.5}, "checkpoint_every=2.5 is invalid"),
    ({"steps": 3}, "steps=3 disagrees with actions.shape"),
])
def test_bad_rollout_arguments(kwargs, match):
    """Verify that bad rollout arguments are refused with a message naming them."""
    with pytest.raises(ValueError, match=match):
        checkpointed_rollout(lambda s, a: s + a, torch.zeros(2), torch.zeros(5, 2), **kwargs)


def test_second_backward_is_refused_clearly():
    """Verify that a checkpointed rollout refuses a second backward instead of returning wrong grads."""
    x0 = torch.ones(2, dtype=torch.float64, requires_grad=True)
    out = checkpointed_rollout(lambda s, a: s * 1.1 + a, x0, torch.zeros(4, 2, dtype=torch.float64),
                               checkpoint_every=2)
    out.state.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated once"):
        out.state.sum().backward()


class _WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2.02 * x  # 1% wrong


def test_gradient_check_detects_a_wrong_gradient():
    """Verify that assert_grad_matches_fd fails on a 1% gradient error and passes on the correct one."""
    x = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
    assert_grad_matches_fd(lambda t: t**2, [x])
    with pytest.raises(AssertionError, match="gradient mismatch for input 0"):
        assert_grad_matches_fd(_WrongSquare.apply, [x])


def test_gradient_check_detects_a_wrong_gradient_hidden_among_inputs():
    """Verify that a wrong gradient in one input is caught even when the other input is right."""
    def fn(a, b):
        return _WrongSquare.apply(a) * 1e-3 + b**3

    a = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    with pytest.raises(AssertionError, match="input 0"):
        assert_grad_matches_fd(fn, [a, a.clone()], rtol=1e-7)
