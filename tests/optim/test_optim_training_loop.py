"""Verify the optimizers inside the shared training loop: Hessian, zeroth-order, closure and schedule paths."""

from __future__ import annotations

import json

import pytest
import torch
from physim.operators.training import TrainConfig, Trainer
from torch import nn

from physim.autodiff import first_order_only_ops
from physim.errors import ConfigError
from physim.optim import AdaptiveBatchSize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=64, seed=0, noise=0.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return torch.utils.data.TensorDataset(x, x @ w + 0.3 + noise * torch.randn(n, 1, generator=gen))


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _cfg(tmp_path, **kw):
    base = {"run_dir": tmp_path, "epochs": 5, "batch_size": 16, "lr": 1e-2, "log": "none", "progress": False}
    return TrainConfig(**{**base, **kw})


# (optimizer, lr, epochs): SophiaH clips every coordinate's step, so it needs a large lr and more steps here.
@pytest.mark.parametrize(("name", "lr", "epochs"), [("adahessian", 0.1, 8), ("sophiah", 1.0, 16), ("mezo", 5e-3, 30),
                                                    ("lbfgs", 0.5, 8), ("adan", 0.1, 8), ("mfac", 0.1, 16)])
def test_loop_trains_with_every_kind_of_optimizer(tmp_path, name, lr, epochs):
    """Verify Hessian (create_graph), zeroth-order (closure, no backward) and closure optimizers all learn."""
    kw = {"mfac": {"ngrads": 16, "damp": 1e-2}, "lbfgs": {"max_iter": 4}}.get(name, {})
    trainer = Trainer(_model(), _cfg(tmp_path, optimizer=name, lr=lr, epochs=epochs, optimizer_kwargs=kw),
                      _data(), loss_fn=mse)
    assert trainer.needs_hessian == (name in ("adahessian", "sophiah"))
    hist = trainer.fit().history
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"], hist


class _WarpLinear(nn.Module):
    """y = W x computed by a Warp kernel (first derivatives only)."""

    def __init__(self):
        super().__init__()
        from tests_optim_warp_kernels import warp_scale_op

        self.w = nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
        self.op = warp_scale_op()

    def forward(self, x):
        return self.op(x.reshape(-1).contiguous(), self.w).reshape(x.shape)


def test_hessian_optimizers_are_refused_on_warp_losses(tmp_path):
    """Verify the loop refuses AdaHessian on a loss through a Warp kernel, naming the op, before stepping."""
    pytest.importorskip("warp")
    model = _WarpLinear()
    x = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(8, 1)
    data = torch.utils.data.TensorDataset(x, 2.0 * x)
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    assert first_order_only_ops(loss(model, (x, 2 * x))) == ["Warp kernel op 'scale'"]
    before = model.w.detach().clone()
    trainer = Trainer(model, _cfg(tmp_path, optimizer="adahessian", batch_size=8), data, loss_fn=loss)
    with pytest.raises(ConfigError, match=r"adahessian needs backward\(create_graph=True\).*Warp kernel op 'scale'"):
        trainer.fit()
    torch.testing.assert_close(model.w.detach(), before)
    # A first-order optimizer trains the same model through the same kernel.
    result = Trainer(model, _cfg(tmp_path / "sgd", optimizer="sgd", lr=1.0, batch_size=8, epochs=20), data,
                     loss_fn=loss).fit()
    assert abs(float(model.w) - 2.0) < 1e-6, result.history[-1]


def test_simulator_graphs_are_recognised_as_first_order_only():
    """Verify the markers on the Warp and Taichi chains' ops and on checkpointed rollouts, and pure torch is clean."""
    from physim.springs import ChainConfig, TaichiChain, WarpChain

    cfg = ChainConfig(particle_count=3, substeps=2)
    for cls, backend in ((WarpChain, "Warp kernel"), (TaichiChain, "Taichi kernel")):
        sim = cls(cfg)
        force = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
        s1 = sim.step(sim.reset(), force)
        found = first_order_only_ops(s1.x.sum())
        assert len(found) == 1 and found[0].startswith(backend), found
        rolled = sim.rollout(sim.reset(), force.expand(4, 3, 2), checkpoint_every=2)
        assert "checkpointed rollout" in first_order_only_ops(rolled.state.x.sum())
    assert first_order_only_ops((_model()(torch.randn(2, 4)) ** 2).sum()) == []
    assert first_order_only_ops(torch.ones(())) == []


def test_refined_schedule_from_a_previous_run(tmp_path):
    """Verify grad_norms.json is written and a schedule='refined' run follows the refinement of it."""
    first = Trainer(_model(), _cfg(tmp_path / "a", optimizer="sgd", lr=1e-2), _data(), loss_fn=mse)
    first.fit()
    norms = json.loads((tmp_path / "a" / "grad_norms.json").read_text())
    assert len(norms["l2"]) == len(norms["l1"]) == 5 * 4 and all(v > 0 for v in norms["l2"])
    second = Trainer(_model(), _cfg(tmp_path / "b", optimizer="sgd", lr=1e-2, schedule="refined",
                                    refine_from=tmp_path / "a"), _data(), loss_fn=mse)
    from physim.optim import refined_schedule

    want = refined_schedule(norms["l2"], total_steps=20, form="sgd")
    lrs = []
    second.callbacks.append(type("Rec", (), {"on_batch_end": lambda self, tr, s, l: lrs.append(
        tr.optimizer.param_groups[0]["lr"])})())
    second.fit()
    # on_batch_end runs after scheduler.step(): it sees the lr of the next step.
    assert lrs[:-1] == pytest.approx((1e-2 * want[1:]).tolist(), rel=1e-9)
    with pytest.raises(ConfigError, match=r"^refine_from=None"):
        _cfg(tmp_path, schedule="refined")
    with pytest.raises(ConfigError, match=r"grad_norms.json"):
        Trainer(_model(), _cfg(tmp_path / "c", schedule="refined", refine_from=tmp_path / "missing"), _data(),
                loss_fn=mse)


def test_adaptive_batch_size_grows_on_noisy_data(tmp_path):
    """Verify the norm-test callback raises the batch size (effective next epoch) on noisy regression."""
    cb = AdaptiveBatchSize(eta=0.3, probe_size=32, max_batch_size=64)
    trainer = Trainer(_model(), _cfg(tmp_path, batch_size=4, epochs=4, lr=1e-2), _data(n=128, noise=1.0),
                      loss_fn=mse, callbacks=[cb])
    trainer.fit()
    sizes = [b for _, b in cb.history]
    assert sizes[0] > 4 and sizes == sorted(sizes) and sizes[-1] <= 64
    assert trainer.batch_size == sizes[-1]
    with pytest.raises(ConfigError, match=r"^eta="):
        AdaptiveBatchSize(eta=0.0)
