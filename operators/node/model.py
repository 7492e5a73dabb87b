"""A neural ODE operator, dy/dt = f_θ(t, y), solved by torchdiffeq with step recording.

The dynamics network counts its function evaluations (NFE) and, while the model
solves, records every step the adaptive solver accepts (t0, y0, dt) through
torchdiffeq's ``callback_accept_step``. `regularization` then samples recorded steps
and recomputes the solver's local error estimate and stiffness indicator there
(`operators/node/heuristics.py`): the local regularisation of Pal et al., "Locally
Regularized Neural Differential Equations" (ICML 2023), following "Opening the
Blackbox" (ICML 2021). Because the penalty is recomputed from detached states, it
works with ``odeint`` and with ``odeint_adjoint`` alike.

Example::

    model = NeuralODE(dim=2, hidden=50)
    ys = model(y0, t)                               # (len(t), batch, 2)
    reg = model.regularization(n_samples=1)         # from the steps of that solve
    loss = mse(ys, target) + 0.1 * reg.error + 0.01 * reg.stiffness
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from physim.operators.base import OperatorBase
from physim.operators.node.heuristics import step_heuristics
from torch import nn

from physim.config import check_choice, check_int, check_positive
from physim.errors import ConfigError

__all__ = ["LocalRegularization", "NeuralODE", "ODEFunc"]

_ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "elu": nn.ELU}
_METHODS = ("dopri5",)  # the recorded heuristics use this pair's tableau


class ODEFunc(nn.Module):
    """MLP dynamics f(t, y) that counts evaluations and records accepted solver steps.

    Args:
        dim: State dimension.
        hidden: Width of the hidden layers.
        depth: Number of hidden layers.
        activation: One of tanh, softplus, silu, elu.
        cubic: Feed y³ (elementwise) instead of y, as in the classic spiral demo whose
            true dynamics are cubic.
    """

    def __init__(self, dim: int, hidden: int, depth: int, activation: str, cubic: bool):
        super().__init__()
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        width = dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), act()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.cubic = cubic
        self.nfe = 0
        self.recording = False
        self.accepted: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.rejected = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.net(y**3 if self.cubic else y)

    # torchdiffeq calls these from its adaptive Runge–Kutta loop.
    def callback_accept_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        if self.recording:
            self.accepted.append((t0.detach().clone(), y0.detach().clone(), dt.detach().clone()))

    def callback_reject_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        if self.recording:
            self.rejected += 1


@dataclass
class LocalRegularization:
    """Penalties from the solver heuristics at sampled steps.

    Attributes:
        error: Mean of E_j·|dt_j| over the sampled steps (scaled local error × step).
        stiffness: Mean of ρ_j, the stiffness estimates [1/time unit].
        steps: Indices of the sampled accepted steps.
    """

    error: torch.Tensor
    stiffness: torch.Tensor
    steps: list[int]


class NeuralODE(OperatorBase, name="node"):
    """Neural ODE dy/dt = f_θ(t, y) integrated by torchdiffeq's adaptive Dopri5.

    Args:
        dim: State dimension.
        hidden: Hidden width of f_θ.
        depth: Hidden layers of f_θ.
        activation: tanh, softplus, silu or elu.
        cubic: Feed y³ to the network (spiral-type data).
        rtol, atol: Solver tolerances (they also scale the regulariser's error ratio).
        adjoint: Backpropagate with the continuous adjoint (``odeint_adjoint``: memory
            independent of the number of steps) instead of through the solver's operations.
        method: Only ``"dopri5"`` (the heuristics are recomputed with its tableau).
        max_num_steps: Solver step limit per solve (a stiff model fails loudly).
    """

    def __init__(self, *, dim: int = 2, hidden: int = 50, depth: int = 1, activation: str = "tanh",
                 cubic: bool = False, rtol: float = 1e-3, atol: float = 1e-4, adjoint: bool = False,
                 method: str = "dopri5", max_num_steps: int = 10_000):
        super().__init__()
        check_int("dim", dim, 1)
        check_int("hidden", hidden, 1)
        check_int("depth", depth, 0)
        check_choice("activation", activation, tuple(_ACTIVATIONS))
        check_positive("rtol", rtol)
        check_positive("atol", atol)
        check_choice("method", method, _METHODS)
        check_int("max_num_steps", max_num_steps, 1)
        self.func = ODEFunc(dim, hidden, depth, activation, cubic)
        self.dim, self.rtol, self.atol, self.adjoint = dim, rtol, atol, adjoint
        self.method, self.max_num_steps = method, max_num_steps
        self.last_nfe = 0

    @property
    def nfe(self) -> int:
        """Function evaluations of the dynamics so far (forward and backward passes)."""
        return self.func.nfe

    def forward(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Solve from `y0` (shape (..., dim)) at times `t` (shape (T,), increasing) → (T, ..., dim).

        The solve's accepted steps are recorded for `regularization` (in training mode).
        """
        import torchdiffeq

        if y0.shape[-1] != self.dim:
            raise ConfigError("y0", tuple(y0.shape), f"a tensor whose last dimension is dim={self.dim}")
        if t.ndim != 1 or t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise ConfigError("t", tuple(t.shape), "a strictly increasing 1-D tensor of at least 2 times")
        f = self.func
        f.accepted, f.rejected, f.recording = [], 0, self.training
        before = f.nfe
        opts = {"max_num_steps": self.max_num_steps}
        try:
            if self.adjoint:
                ys = torchdiffeq.odeint_adjoint(f, y0, t, rtol=self.rtol, atol=self.atol, method=self.method,
                                                options=opts, adjoint_params=tuple(f.parameters()))
            else:
                ys = torchdiffeq.odeint(f, y0, t, rtol=self.rtol, atol=self.atol, method=self.method, options=opts)
        finally:
            f.recording = False
        self.last_nfe = f.nfe - before
        return ys

    def regularization(self, *, n_samples: int = 1, generator: torch.Generator | None = None) -> LocalRegularization:
        """Local error and stiffness penalties at `n_samples` random steps of the last solve.

        Args:
            n_samples: Accepted steps to sample uniformly (with replacement), ≥ 1.
            generator: Source of the sampling (reproducibility).

        Raises:
            RuntimeError: No recorded step (call the model in training mode first).
        """
        check_int("n_samples", n_samples, 1)
        steps = self.func.accepted
        if not steps:
            raise RuntimeError("NeuralODE.regularization: no recorded solver step; run a forward pass in train mode")
        idx = torch.randint(0, len(steps), (n_samples,), generator=generator).tolist()
        errs, stiffs = [], []
        for i in idx:
            t0, y0, dt = steps[i]
            h = step_heuristics(self.func, t0.to(y0.dtype), y0, dt.to(y0.dtype), rtol=self.rtol, atol=self.atol)
            errs.append(h.error_ratio * dt.abs().to(y0.dtype))
            stiffs.append(h.stiffness)
        return LocalRegularization(error=torch.stack(errs).mean(), stiffness=torch.stack(stiffs).mean(), steps=idx)


def spiral_data(n_points: int = 1000, t_end: float = 25.0, *, dtype: torch.dtype = torch.float64):
    """The classic 2-D cubic spiral dy/dt = A y³, A = [[-0.1, 2], [-2, -0.1]], y(0) = (2, 0).

    Solved with torchdiffeq's dopri5 at rtol 1e-7; returns ``(t (n_points,), y (n_points, 2))``.
    """
    import torchdiffeq

    check_int("n_points", n_points, 2)
    check_positive("t_end", t_end)
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=dtype)
    t = torch.linspace(0.0, t_end, n_points, dtype=dtype)
    y0 = torch.tensor([[2.0, 0.0]], dtype=dtype)
    with torch.no_grad():
        y = torchdiffeq.odeint(lambda _t, y: (y**3) @ A.T, y0, t, rtol=1e-7, atol=1e-9)
    return t, y[:, 0]


