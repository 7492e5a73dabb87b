"""Verify MeZO, Sparse MeZO, SPSA and the functional SPSA estimator against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from physim.errors import ConfigError
from physim.optim import SPSA, MeZO, SparseMeZO, make_optimizer, spsa_gradient
from physim.optim.zeroth_order import _CHUNK

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mezo_update_uses_the_perturbation_direction_and_restores_parameters():
    """Verify θ_new − θ = −lr·g·z with g = z·∇L exactly, on a quadratic, across noise chunks.

    For L = ½‖θ‖² the central difference is exact, so the projected gradient reported by
    the optimizer must equal z·θ for the very z recovered from its update; the parameter
    is larger than one noise chunk, so the chunked regeneration is covered.
    """
    n = _CHUNK + 12_345
    theta = torch.nn.Parameter(torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    before = theta.detach().clone()
    lr = 1e-3
    opt = MeZO([theta], lr=lr, eps=1e-2, seed=7)
    calls = []

    def closure():
        calls.append(theta.detach().clone())
        return 0.5 * (theta**2).sum()

    opt.step(closure)
    (g,) = opt.last_projected_grads
    z = -(theta.detach() - before) / (lr * g)
    assert g == pytest.approx(float(z @ before), rel=1e-8)
    assert abs(float(z.mean())) < 0.01 and float(z.var()) == pytest.approx(1.0, abs=0.02)  # it is N(0, I) noise
    # The two evaluations sat at θ ± εz.
    torch.testing.assert_close(calls[0], before + 1e-2 * z, rtol=0, atol=1e-9)
    torch.testing.assert_close(calls[1], before - 1e-2 * z, rtol=0, atol=1e-9)


def test_mezo_keeps_no_tensor_state_and_is_reproducible():
    """Verify inference-level memory (no per-parameter state) and identical runs from one seed."""
    def run():
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 1)
        x, y = torch.randn(32, 5), torch.randn(32, 1)
        opt = MeZO(model.parameters(), lr=1e-2, eps=1e-3, seed=11, n_perturbations=2)
        for _ in range(5):
            opt.step(lambda: torch.nn.functional.mse_loss(model(x), y))
        assert not any(isinstance(v, torch.Tensor) for st in opt.state.values() for v in st.values())
        assert len(opt.state) == 0
        return torch.nn.utils.parameters_to_vector(model.parameters())

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_mezo_trains_a_module_and_a_non_differentiable_objective():
    """Verify that MeZO reduces an MLP's MSE and the misclassification COUNT of a linear classifier."""
    torch.manual_seed(0)
    x = torch.randn(128, 3)
    w_true = torch.tensor([1.5, -2.0, 0.5])
    y = (x @ w_true).unsqueeze(-1)
    model = torch.nn.Linear(3, 1)
    opt = make_optimizer("mezo", model.parameters(), lr=0.05, eps=1e-3, n_perturbations=4)
    first = float(torch.nn.functional.mse_loss(model(x), y).detach())
    for _ in range(150):
        opt.step(lambda: torch.nn.functional.mse_loss(model(x), y))
    assert float(torch.nn.functional.mse_loss(model(x), y)) < 0.1 * first

    # A piecewise-constant objective (no useful gradient anywhere): errors of sign(x·w).
    labels = torch.sign(x @ w_true)
    w = torch.nn.Parameter(torch.tensor([-1.0, 1.0, 1.0]))
    errors = lambda: int((torch.sign(x @ w) != labels).sum())  # noqa: E731
    start = errors()
    opt = MeZO([w], lr=0.02, eps=0.3, n_perturbations=8, seed=1)
    for _ in range(150):
        opt.step(errors)
    assert start > 40 and errors() <= 0.25 * start


def test_sparse_mezo_only_touches_small_magnitude_entries():
    """Verify that entries above the per-tensor (1 − sparsity)-quantile of |θ| never change."""
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(40, 25, generator=gen))
    before = p.detach().clone()
    h = before.abs().reshape(-1).kthvalue(math.ceil(0.25 * p.numel())).values
    opt = SparseMeZO([p], lr=1e-2, eps=1e-3, sparsity=0.75, seed=0)
    opt.step(lambda: (p**3).sum())
    changed = (p.detach() != before)
    small = before.abs() <= h
    assert not changed[~small].any()
    assert changed[small].float().mean() > 0.99
    assert small.float().mean() == pytest.approx(0.25, abs=0.01)


def test_spsa_gradient_is_unbiased():
    """Verify E[ĝ] = ∇f on a quadratic within 5 standard errors, Gaussian and Rademacher, batched or not."""
    A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    grad = A @ x
    f = lambda v: 0.5 * v @ A @ v  # noqa: E731
    fb = lambda V: 0.5 * torch.einsum("ni,ij,nj->n", V, A, V)  # noqa: E731
    n = 20_000
    for dist in ("gaussian", "rademacher"):
        for batched in (False, True):
            if not batched and dist == "rademacher":
                continue  # the unbatched loop is slow at this n; the batched path covers the estimator
            g = spsa_gradient(fb if batched else f, x, n_perturbations=n, eps=0.1, distribution=dist,
                              generator=torch.Generator().manual_seed(0), batched=batched)
            # Var of one Gaussian sample per component ≤ ‖∇f‖² + ∇f_i² (Rademacher: ≤ ‖∇f‖²).
            se = torch.sqrt((grad.norm() ** 2 + grad**2) / n)
            assert torch.all((g - grad).abs() < 5 * se), (dist, batched, g, grad)


def test_spsa_optimizer_and_bad_input():
    """Verify SPSA descends and that zero perturbations, bad eps/lr and missing closures are refused."""
    theta = torch.nn.Parameter(torch.full((10,), 2.0))
    opt = SPSA([theta], lr=0.05, eps=1e-3, seed=0)
    for _ in range(100):
        opt.step(lambda: (theta**2).sum())
    assert float((theta**2).sum()) < 0.2 * 40.0
    with pytest.raises(ConfigError, match=r"^n_perturbations=0"):
        MeZO([theta], n_perturbations=0)
    with pytest.raises(ConfigError, match=r"^n_perturbations=0"):
        spsa_gradient(lambda v: v.sum(), theta.detach(), n_perturbations=0)
    with pytest.raises(ConfigError, match=r"^eps=0"):
        make_optimizer("mezo", [theta], eps=0.0)
    with pytest.raises(ConfigError, match=r"^lr="):
        make_optimizer("spsa", [theta], lr=-1.0)
    with pytest.raises(ConfigError, match=r"^sparsity=1.0"):
        SparseMeZO([theta], sparsity=1.0)
    with pytest.raises(ValueError, match="closure"):
        opt.step(None)
    with pytest.raises(ValueError, match="scalar"):
        opt.step(lambda: theta.detach())


def test_mezo_tunes_a_simulator_run_without_a_tape():
    """Verify MeZO recovers a force from a Warp simulator run evaluated without autodiff (no tape, no gradient).

    The target tip position is the one a known force produces; each evaluation is a plain
    forward rollout under ``torch.no_grad`` and returns the squared tip error in mm².
    """
    pytest.importorskip("warp")
    from physim.springs import ChainConfig, WarpChain

    sim = WarpChain(ChainConfig(particle_count=4, substeps=5, gravity=0.0))

    def tip(force: torch.Tensor) -> torch.Tensor:
        state = sim.reset()
        action = torch.zeros(4, 2, dtype=torch.float64)
        action[-1] = 10.0 * force  # [N]; the parameter is O(1)
        with torch.no_grad():
            for _ in range(3):
                state = sim.step(state, action)
        return state.x[-1]

    target = tip(torch.tensor([0.3, -0.2], dtype=torch.float64))
    force = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    error = lambda: float(((tip(force.detach()) - target) * 1e3).pow(2).sum())  # noqa: E731
    start = error()
    opt = MeZO([force], lr=3e-4, eps=1e-3, n_perturbations=2, seed=0)
    for _ in range(40):
        opt.step(error)
    assert error() < 0.05 * start, (start, error(), force)
