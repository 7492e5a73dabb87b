"""Verify GNS and GIOROM: translation invariance, the decoder's interpolation property, training,
save/load, and clear errors and warnings."""

from __future__ import annotations

import warnings

import pytest
import torch
from physim.operators import load
from physim.operators.giorom import GIOROM, KernelIntegralDecoder
from physim.operators.gns import GNS
from physim.operators.lagrangian import WindowDataset, collate_windows
from physim.operators.lagrangian.synthetic import rigid_body
from physim.operators.training import TrainConfig

from physim.errors import ConfigError, SimulationDiverged

BOUNDS = [[0.0, 0.0], [1.0, 1.0]]
SHIFT = torch.tensor([0.3125, -0.1875], dtype=torch.float64)  # exactly representable


def _tiny_gns(**kw):
    return GNS(dim=2, radius=0.08, bounds=BOUNDS, hidden=16, layers=2, mlp_layers=1, type_dim=4, **kw)


def _tiny_giorom(**kw):
    base = {"dim": 2, "radius": 0.16, "sparsity": 4, "bounds": BOUNDS, "hidden": 16, "mlp_layers": 1, "type_dim": 4,
            "latent_resolution": 6, "gno_width": 16, "heads": 2, "experts": 2, "transformer_layers": 1,
            "decoder_hidden": 16}
    base.update(kw)
    return GIOROM(**base)


def _history(count=120, seed=0, near_wall=True):
    """A disc (near the lower-left walls, so wall features matter) moving and spinning; (count, 6, 2)."""
    traj = rigid_body(count=count, frames=6, seed=seed, size=0.12, speed=4e-3, spin=0.04)
    pos = traj.positions.double()
    if near_wall:
        pos = pos - pos[0].min(0).values + 0.02
    return pos.transpose(0, 1).contiguous(), traj.particle_type


MODELS = {
    "gns": _tiny_gns,
    "giorom-domain": _tiny_giorom,
    "giorom-cloud": lambda: _tiny_giorom(latent_frame="cloud"),
    "giorom-cloud-nowalls": lambda: _tiny_giorom(latent_frame="cloud", bounds=None),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_are_translation_invariant(name):
    """Verify that shifting all inputs (positions and domain walls) shifts the next positions and
    leaves the accelerations unchanged, and that shifting the particles alone does change them."""
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    hist, ptype = _history()
    model.fit_statistics([hist.transpose(0, 1)])
    bounds = None if model.bounds is None else model.bounds
    shifted_bounds = None if bounds is None else bounds + SHIFT
    acc = model.acceleration(hist, ptype)
    acc_shifted = model.acceleration(hist + SHIFT, ptype, bounds=shifted_bounds)
    torch.testing.assert_close(acc_shifted, acc, rtol=1e-9, atol=1e-12)
    nxt = model.next_positions(hist, ptype)
    torch.testing.assert_close(model.next_positions(hist + SHIFT, ptype, bounds=shifted_bounds), nxt + SHIFT,
                               rtol=1e-9, atol=1e-12)
    assert float(acc.detach().abs().max()) > 1e-6
    if bounds is not None:  # the walls are inputs: moving the particles alone is a different scene
        assert not torch.allclose(model.acceleration(hist + SHIFT, ptype), acc, atol=1e-6)


def test_dense_decoding_is_translation_equivariant():
    """Verify that GIOROM's decoded dense positions shift with the reference and sparse positions."""
    torch.manual_seed(1)
    model = _tiny_giorom(latent_frame="cloud", bounds=None).double()
    for head in (model.decoder.head_c, model.decoder.head_b, model.decoder.head_s):
        torch.nn.init.normal_(head.weight, std=0.3)
    hist, _ = _history(near_wall=False)
    ref, cur = hist[:, 0], hist[:, -1]
    idx = model.sample_sparse(ref)
    dense = model.decode(ref[idx], cur[idx], ref)
    torch.testing.assert_close(model.decode(ref[idx] + SHIFT, cur[idx] + SHIFT, ref + SHIFT), dense + SHIFT,
                               rtol=1e-9, atol=1e-12)


def test_decoder_reproduces_sparse_values_at_sparse_points():
    """Verify that the decoder returns the given values at the sparse points, whatever its weights,
    and is exact for a linear field everywhere when untrained (first-order interpolation)."""
    torch.manual_seed(2)
    dec = KernelIntegralDecoder(dim=3, channels=2, hidden=16)
    y = torch.rand(200, 3)
    values = torch.randn(200, 2)
    queries = torch.cat([y[torch.randperm(200)[:50]], torch.rand(300, 3)])
    linear = y @ torch.randn(3, 2) + torch.randn(2)
    out = dec(y, linear, queries)
    a_fit = torch.linalg.lstsq(torch.cat([y, torch.ones(200, 1)], 1), linear).solution
    expected = torch.cat([queries, torch.ones(queries.shape[0], 1)], 1) @ a_fit
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    for head in (dec.head_c, dec.head_b, dec.head_s):  # a "trained" decoder: non-zero learned terms
        torch.nn.init.normal_(head.weight, std=0.5)
        torch.nn.init.normal_(head.bias, std=0.5)
    out = dec(y, values, queries)
    sparse_at = {tuple(p.tolist()): i for i, p in enumerate(y)}
    idx = torch.tensor([sparse_at[tuple(q.tolist())] for q in queries[:50]])
    torch.testing.assert_close(out[:50], values[idx], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[50:], dec(y, values, queries[50:]) * 0)  # elsewhere: a real field


def _decoder_by_edges(dec, y, values, queries):
    """The decoder's formula evaluated edge by edge (the docstring's sums, no sparse matrix)."""
    plan = dec.plan(y, queries)
    n = y.shape[0]
    s_nb, s_node = plan.source_edges
    dy, df = y[s_nb] - y[s_node], values[s_nb] - values[s_node]
    grads, h = [], []
    for i in range(n):
        sel = s_node == i
        a = dy[sel].T @ dy[sel] / sel.sum() + 1e-6 * plan.length[i] ** 2 * torch.eye(y.shape[1], dtype=y.dtype)
        g = torch.linalg.solve(a, (dy[sel].T @ df[sel] / sel.sum())).T
        res = df[sel] - dy[sel] @ g.T
        scale = torch.sqrt((df[sel] ** 2).sum(1).mean() + 1e-30)
        ell = plan.length[i]
        feats = torch.cat([dy[sel] / ell, df[sel] / (scale + 1e-12 * ell), res / (scale + 1e-12 * ell)], 1)
        grads.append((g, scale, ell))
        h.append(dec.edge_mlp(feats).mean(0))
    h = dec.node_mlp(torch.stack(h))
    out = torch.zeros(queries.shape[0], values.shape[1], dtype=values.dtype)
    den = torch.zeros(queries.shape[0], dtype=values.dtype)
    for j, q in plan.query_edges.T.tolist():
        g, scale, ell = grads[j]
        x = queries[q] - y[j]
        dist = torch.linalg.vector_norm(x)
        rho = 1.05 * max(float(torch.linalg.vector_norm(queries[q] - y[k]))
                         for k in plan.query_edges[0][plan.query_edges[1] == q].tolist())
        c_mat = dec.head_c(h[j]).view(values.shape[1], -1) * scale / ell
        b_mat = dec.head_b(h[j]).view(-1, values.shape[1]) * scale
        phi = torch.sin((x / ell) @ dec.freq + dec.phase) - torch.sin(dec.phase)
        c = values[j] + (g + c_mat) @ x + phi @ b_mat
        w = torch.exp(torch.clamp(dec.head_s(h[j])[0], -3, 3)) * (1 - dist / rho) ** 2 / dist**2
        out[q] += w * c
        den[q] += w
    return out / den[:, None]


def test_decoder_matches_its_formula_and_finite_differences():
    """Verify that the decoder's sparse-matrix evaluation equals the formula summed edge by edge
    (trained-like non-zero heads, float64), and that its gradient with respect to the sparse values
    matches finite differences."""
    from physim.testing import assert_grad_matches_fd

    torch.manual_seed(4)
    dec = KernelIntegralDecoder(dim=2, channels=2, hidden=8, features=6).double()
    for head in (dec.head_c, dec.head_b, dec.head_s):
        torch.nn.init.normal_(head.weight, std=0.3)
        torch.nn.init.normal_(head.bias, std=0.3)
    y = torch.rand(30, 2, dtype=torch.float64)
    values = 0.05 * torch.randn(30, 2, dtype=torch.float64)
    queries = torch.rand(25, 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(dec(y, values, queries), _decoder_by_edges(dec, y, values, queries),
                                   rtol=1e-10, atol=1e-12)
    plan = dec.plan(y, queries)
    assert_grad_matches_fd(lambda v: dec(y, v, queries, plan=plan), [values.clone().requires_grad_(True)])


def test_giorom_decode_at_sparse_points_and_outside_domain_warning():
    """Verify GIOROM.decode at the sparse reference points returns the sparse positions, and that
    queries outside the training domain give one warning with their count, not an error."""
    torch.manual_seed(3)
    model = _tiny_giorom()
    hist, _ = _history(near_wall=False)
    hist = hist.float()
    ref, cur = hist[:, 0], hist[:, -1]
    idx = model.sample_sparse(ref)
    torch.testing.assert_close(model.decode(ref[idx], cur[idx], ref[idx]), cur[idx], rtol=1e-6, atol=1e-6)
    outside = torch.cat([ref[:10], torch.tensor([[1.5, 0.5], [-0.2, 0.1], [0.5, 2.0]])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model.decode(ref[idx], cur[idx], outside)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("3 of 13 query points lie outside the training domain")
    assert torch.isfinite(out).all()


def _training_data():
    trajs = [rigid_body(count=60, frames=14, seed=s, size=0.1, speed=3e-3, spin=0.05) for s in range(3)]
    return trajs


@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_a_few_training_steps_lower_the_loss(tmp_path, name):
    """Verify that training with the shared loop lowers the (noise-free) one-step loss, and that the
    saved best model loads back and predicts identically (also after a dense rollout)."""
    from physim.operators.lagrangian.train import train_lagrangian

    torch.manual_seed(0)
    model = _tiny_gns(noise_std=0.0) if name == "gns" else _tiny_giorom(noise_std=0.0)
    trajs = _training_data()
    model.fit_statistics(trajs)
    batch = collate_windows([WindowDataset(trajs, history=6)[i] for i in (0, 5, 9)])

    def eval_loss():
        model.eval()
        torch.manual_seed(123)  # the same sparse sets before and after
        with torch.no_grad():
            return float(model.training_loss(batch)[0])

    before = eval_loss()
    cfg = TrainConfig(run_dir=tmp_path / "run", epochs=4, batch_size=4, lr=3e-3, schedule="constant", log="csv",
                      progress=False)
    result = train_lagrangian(model, trajs, trajs[:1], cfg, valid_steps=4, valid_trajectories=1)
    after = eval_loss()
    assert after < 0.7 * before, (before, after)
    assert len(result.history) == 4 and all("valid_loss" in row for row in result.history)

    model.save(tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert type(again) is type(model) and again.metadata()["kwargs"] == model.metadata()["kwargs"]
    again.eval()
    model.eval()
    hist = trajs[1].positions[:6].transpose(0, 1)
    ptype = trajs[1].particle_type
    assert torch.equal(again.predict(hist, ptype), model.predict(hist, ptype))
    if name == "giorom":
        assert torch.equal(again.rollout_dense(hist, ptype, 3), model.rollout_dense(hist, ptype, 3))
    else:
        assert torch.equal(again.rollout(hist, ptype, 3), model.rollout(hist, ptype, 3))
    best = load(result.best_model_path)
    assert type(best) is type(model)


def test_rollout_raises_on_non_finite_positions():
    """Verify that a rollout producing NaN raises SimulationDiverged naming the step and quantity."""
    model = _tiny_gns().eval()
    hist, ptype = _history()
    with torch.no_grad():
        model.decoder[-1].bias.fill_(float("nan"))
    with pytest.raises(SimulationDiverged, match="substep 0: positions"):
        model.rollout(hist.float(), ptype, 3)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: GNS(dim=2, bounds=[[0.0], [1.0]]), "bounds"),
        (lambda: GNS(dim=2, bounds=[[0.0, 1.0], [1.0, 0.5]]), "bounds"),
        (lambda: GNS(dim=4), "dim"),
        (lambda: GNS(radius=0.0), "radius"),
        (lambda: GIOROM(dim=2, bounds=None), "latent_frame"),
        (lambda: GIOROM(dim=2, bounds=BOUNDS, sparsity=0.5), "sparsity"),
        (lambda: GIOROM(dim=2, bounds=BOUNDS, gno_width=30, heads=4), "gno_width"),
        (lambda: GIOROM(dim=2, bounds=BOUNDS, sampling="grid"), "sampling"),
    ],
)
def test_bad_configuration_is_one_clear_error(build, field):
    """Verify that invalid constructor arguments raise ConfigError naming the field."""
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


def test_wrong_input_shape_is_one_clear_error():
    """Verify that a history of the wrong shape raises ConfigError naming positions."""
    model = _tiny_gns()
    with pytest.raises(ConfigError, match="positions"):
        model.predict(torch.zeros(10, 5, 2), torch.zeros(10, dtype=torch.long))
