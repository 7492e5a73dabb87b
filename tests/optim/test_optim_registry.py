"""Verify the optimizer registry: names, sources, flags, construction, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch

from physim.errors import ConfigError
from physim.optim import list_optimizers, make_optimizer, optimizer_info
from physim.optim.registry import _SPECIAL

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REQUIRED = ["adam", "adamw", "sgd", "adan", "lion", "sophiah", "adabelief", "adahessian", "diffgrad", "adamp",
            "exadam", "mezo", "sparse_mezo", "spsa", "mfac", "cbo"]


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _one_step(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    info = optimizer_info(name)
    opt = make_optimizer(name, model if info.takes_model else model.parameters(), lr=1e-3)

    def loss():
        return torch.nn.functional.mse_loss(model(x), y)

    if info.zeroth_order:
        opt.step(loss)
    elif info.needs_closure:
        def closure():
            opt.zero_grad()
            value = loss()
            value.backward()
            return value

        opt.step(closure)
    else:
        loss().backward(create_graph=info.needs_hessian)
        opt.step()
    return float(loss())


def test_required_optimizers_are_registered_with_their_source():
    """Verify that the issue's optimizers exist, come from the right package and declare Hessian needs."""
    names = list_optimizers()
    assert set(REQUIRED) <= set(names)
    assert optimizer_info("adam").source == "torch.optim"
    for name in ("adan", "lion", "sophiah", "adabelief", "adahessian", "diffgrad", "adamp", "exadam"):
        info = optimizer_info(name)
        assert info.source == "pytorch_optimizer", name
        assert info.cls.__module__.startswith("pytorch_optimizer"), name
    for name in ("mezo", "sparse_mezo", "spsa", "cbo"):
        assert optimizer_info(name).zeroth_order and optimizer_info(name).source == "physim"
    hessian = {i.name for i in list_optimizers(details=True) if i.needs_hessian}
    assert hessian == {"adahessian", "sophiah"}
    assert len(list_optimizers("pytorch_optimizer")) > 100


def test_spelling_and_collisions():
    """Verify case/dash-insensitive names and that torch wins a name both packages define."""
    assert optimizer_info("Sparse-MeZO").name == "sparse_mezo"
    assert optimizer_info("AdaBelief").name == "adabelief"
    assert optimizer_info("radam").cls is torch.optim.RAdam
    assert optimizer_info("torch.radam").cls is torch.optim.RAdam
    po = optimizer_info("pytorch_optimizer.radam")
    assert po.source == "pytorch_optimizer" and po.cls.__module__.startswith("pytorch_optimizer")


def test_every_registered_optimizer_steps_or_documents_its_needs():
    """Verify that each optimizer takes one finite step on a small MLP, except the documented special ones."""
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.randn(16, 1)
    failures = {}
    for name in list_optimizers():
        if name.split(".")[-1] in _SPECIAL:
            assert optimizer_info(name).note, name
            continue
        model = _mlp()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _one_step(name, model, x, y)
            except Exception as exc:  # collect all, report together
                failures[name] = f"{type(exc).__name__}: {exc}"
                continue
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            failures[name] = "non-finite parameters"
    assert not failures, failures


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")
@pytest.mark.parametrize("name", ["adan", "lion", "adabelief", "diffgrad", "adamp", "exadam", "sophiah", "adahessian"])
def test_paper_optimizers_reduce_a_regression_loss(name):
    """Verify that each seed-paper optimizer reduces an MLP regression loss within 60 steps."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = torch.sin(x.sum(-1, keepdim=True))
    model = _mlp()
    # SophiaH clips each coordinate's step to lr, so it needs a larger lr to move as far in 60 steps.
    lr = {"lion": 3e-3, "sophiah": 0.3, "adahessian": 5e-2}.get(name, 1e-2)
    opt = make_optimizer(name, model.parameters(), lr=lr)
    needs_h = optimizer_info(name).needs_hessian
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = float(loss.detach()) if first is None else first
        loss.backward(create_graph=needs_h)
        opt.step()
    final = float(torch.nn.functional.mse_loss(model(x), y).detach())
    assert final < 0.7 * first, (name, first, final)


def test_unknown_name_lists_valid_ones():
    """Verify that an unknown name raises a ValueError naming it, suggesting close names and listing all."""
    with pytest.raises(ValueError, match=r"optimizer='adamm'.*did you mean 'adam'.*valid names: .*adan") as exc:
        make_optimizer("adamm", _mlp().parameters())
    assert isinstance(exc.value, ConfigError)
    with pytest.raises(ConfigError, match="optimizer="):
        optimizer_info("")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
        ({"betas": (-0.1, 0.99)}, r"betas\[0\]"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"eps": -1.0}, "eps"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(kwargs, field):
    """Verify that bad hyper-parameters raise ConfigError naming the argument, for torch and pytorch-optimizer."""
    for name in ("adam", "adan"):
        with pytest.raises(ConfigError, match=rf"^{field}="):
            make_optimizer(name, _mlp().parameters(), **kwargs)


def test_missing_requirements_are_named():
    """Verify that required constructor arguments and module-taking optimizers give a clear error."""
    with pytest.raises(ConfigError, match="num_iterations"):
        make_optimizer("ranger21", _mlp().parameters(), lr=1e-3)
    with pytest.raises(ConfigError, match="params="):
        make_optimizer("lomo", _mlp().parameters())
    with pytest.raises(ConfigError, match="params="):
        make_optimizer("adam", [])
    with pytest.raises(ConfigError, match="source="):
        list_optimizers("keras")
    assert make_optimizer("adam", _mlp(), lr=1e-3).param_groups[0]["lr"] == 1e-3  # a Module is accepted


def test_optimizers_command(capsys):
    """Verify `physim optimizers` lists the registry, filters by source and details one optimizer."""
    from physim.cli import main

    assert main(["optimizers", "--source", "physim"]) == 0
    out = capsys.readouterr().out
    assert "mezo" in out and "zeroth-order" in out and "adam " not in out
    assert main(["optimizers", "--name", "sophiah"]) == 0
    out = capsys.readouterr().out
    assert "needs_hessian=True" in out and "lr=" in out
    assert main(["optimizers", "--name", "adamm"]) == 2
    assert "did you mean" in capsys.readouterr().err
