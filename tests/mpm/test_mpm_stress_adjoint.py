"""Verify the hand-written adjoint of the taped elastic stress (`elastic_kernels.stress_elastic`).

The kernel stores the SVD of F for the corotated law and its adjoint reuses it (no replay,
no new SVD). Checked here, in float64, kernel by kernel: against central finite differences
(`assert_grad_matches_fd`) and against Warp's automatic adjoint of the law's own function,
for random F, F = I (all singular values equal), a uniaxial stretch (two equal), nearly
coincident singular values (relative gap 1e-9, below the adjoint's switch to the analytic
limit) and an inverted F; its forward values must be bitwise those of the law's function
(float32), which the untaped fused kernels call. A small simulator scene with an elastic and a
von Mises body checks that the elastic kernel and Warp's adjoint of the other laws add up
(neither drops nor double counts).
"""

import functools

import pytest
import torch

from physim.mpm import Body, Box, Elastic, SceneConfig, Simulator, VonMises
from physim.mpm.kernel_types import kernel_types
from physim.mpm.materials import base as mb
from physim.runtime import init_warp
from physim.testing import assert_grad_matches_fd

f64 = torch.float64
MODELS = {"corotated": mb.KIND_COROTATED, "neohookean": mb.KIND_NEOHOOKEAN, "stvk": mb.KIND_STVK}


def _kernels(dim, dtype=f64):
    from physim.mpm.materials.elastic_kernels import make_elastic_stress_kernels

    init_warp()
    T = kernel_types(dim, dtype)
    return T, make_elastic_stress_kernels(T, mb.HAND_WRITTEN_STRESS)


def _table(mu, lam, dtype):
    return torch.stack([torch.ones((), dtype=dtype), mu, lam, *torch.zeros(mb.TABLE_WIDTH - 3, dtype=dtype)])[None]


class _Stress(torch.autograd.Function):
    """τ(F, μ, λ) of one law through `stress_elastic`, with `stress_elastic_adjoint` as backward."""

    @staticmethod
    def forward(ctx, F, mu, lam, kind):
        wp = init_warp()
        n, dim = F.shape[0], F.shape[-1]
        T, K = _kernels(dim, F.dtype)
        table = _table(mu.detach(), lam.detach(), F.dtype)
        Fw = wp.from_torch(F.detach().contiguous(), dtype=T.mat)
        tw = wp.from_torch(table.contiguous(), dtype=T.float)
        body = wp.zeros(n, dtype=wp.int32)
        kinds = wp.array([kind], dtype=wp.int32)
        tau, U, s, V = (wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.vec),
                        wp.zeros(n, dtype=T.mat))
        wp.launch(K.stress_elastic, n, inputs=[Fw, body, kinds, tw], outputs=[tau, U, s, V])
        ctx.saved = (K, T, Fw, body, kinds, tw, U, s, V, n)
        return wp.to_torch(tau).clone()

    @staticmethod
    def backward(ctx, g):
        wp = init_warp()
        K, T, Fw, body, kinds, tw, U, s, V, n = ctx.saved
        gF = wp.zeros(n, dtype=T.mat)
        gt = wp.zeros(tw.shape, dtype=T.float)
        gw = wp.from_torch(g.contiguous(), dtype=T.mat)
        wp.launch(K.stress_elastic_adjoint, n, inputs=[Fw, body, kinds, tw, U, s, V, gw, 1], outputs=[gF, gt])
        gt = wp.to_torch(gt)
        return wp.to_torch(gF).clone(), gt[0, 1].clone(), gt[0, 2].clone(), None


@functools.cache
def _auto_kernel(dim, dtype, model):
    """A kernel evaluating one law's function, to be differentiated by Warp (Warp types in closure)."""
    import warp as wp

    from physim.mpm.materials.elastic_kernels import make_elastic_funcs

    T = kernel_types(dim, dtype)
    mat, flt = T.mat, T.float
    law = getattr(make_elastic_funcs(T), model)

    @wp.kernel
    def auto(F: wp.array(dtype=mat), ml: wp.array(dtype=flt), tau: wp.array(dtype=mat)):
        p = wp.tid()
        tau[p] = law(F[p], ml[0], ml[1])

    return auto


def _auto_reference(F, mu, lam, model, g):
    """(τ, ∂F, ∂μ, ∂λ) from Warp's automatic adjoint of the law's function (the previous taped path)."""
    import warp as wp

    n, dim = F.shape[0], F.shape[-1]
    T = kernel_types(dim, F.dtype)
    auto = _auto_kernel(dim, F.dtype, model)
    Fw = wp.from_torch(F.contiguous(), dtype=T.mat, requires_grad=True)
    ml = wp.from_torch(torch.stack([mu, lam]).contiguous(), dtype=T.float, requires_grad=True)
    tau = wp.zeros(n, dtype=T.mat, requires_grad=True)
    tape = wp.Tape()
    with tape:
        wp.launch(auto, n, inputs=[Fw, ml], outputs=[tau])
    tau.grad = wp.from_torch(g.contiguous(), dtype=T.mat)
    tape.backward()
    gml = wp.to_torch(ml.grad)
    return wp.to_torch(tau).clone(), wp.to_torch(Fw.grad).clone(), gml[0].item(), gml[1].item()


def _deformations(dim):
    """Named batches of F: random, identity, uniaxial, nearly coincident σ, inverted."""
    gen = torch.Generator().manual_seed(3)
    eye = torch.eye(dim, dtype=f64)

    def rot(k):
        Q, _ = torch.linalg.qr(torch.randn(k, dim, dim, generator=gen, dtype=f64))
        return Q * torch.linalg.det(Q).sign()[:, None, None]  # proper rotations

    def with_sigma(sig):
        k = 4
        return rot(k) @ torch.diag_embed(torch.tensor(sig, dtype=f64).expand(k, dim)) @ rot(k).transpose(-1, -2)

    near = [1.2, 1.2 * (1 + 1e-9), 0.9][:dim]
    return {
        "random": eye + 0.2 * torch.randn(4, dim, dim, generator=gen, dtype=f64),
        "identity": eye.expand(4, dim, dim).clone(),
        "uniaxial": torch.diag(torch.tensor([1.3, 1.0, 1.0][:dim], dtype=f64)).expand(4, dim, dim).clone(),
        "near_coincident": with_sigma(near),
        "near_coincident_rotated_identity": with_sigma([1.0, 1.0 + 1e-9, 1.0 - 1e-9][:dim]),
        "inverted": with_sigma([1.1, 0.95, -0.8][:dim]),
    }


# the SVD cases concern the corotated law; the others have no SVD
CASES = [("corotated", c) for c in ("random", "identity", "uniaxial", "near_coincident",
                                    "near_coincident_rotated_identity", "inverted")]
CASES += [(m, c) for m in ("neohookean", "stvk") for c in ("random", "identity")]


@pytest.mark.parametrize(("model", "case"), CASES)
@pytest.mark.parametrize("dim", [3, 2])
def test_stress_adjoint_matches_fd_and_warp(dim, model, case):
    """Verify ∂τ/∂(F, μ, λ) of the hand-written adjoint against FD and against Warp's automatic adjoint."""
    F = _deformations(dim)[case]
    mu, lam = torch.tensor(3.0e3, dtype=f64), torch.tensor(5.0e3, dtype=f64)
    kind = MODELS[model]

    def f(F, mu, lam):
        return _Stress.apply(F, mu, lam, kind)

    assert_grad_matches_fd(f, [F, mu, lam], eps=1e-6, rtol=1e-6)
    # the same numbers as Warp's automatic adjoint of the law's function (two SVDs per particle)
    g = torch.randn(F.shape, generator=torch.Generator().manual_seed(5), dtype=f64)
    Fr, mur, lamr = F.clone().requires_grad_(True), mu.clone().requires_grad_(True), lam.clone().requires_grad_(True)
    tau = f(Fr, mur, lamr)
    tau.backward(g)
    tau_ref, gF_ref, gmu_ref, glam_ref = _auto_reference(F, mu, lam, model, g)
    assert torch.equal(tau.detach(), tau_ref)
    assert bool(torch.isfinite(Fr.grad).all())
    scale = float(gF_ref.abs().max())
    assert torch.allclose(Fr.grad, gF_ref, rtol=0.0, atol=1e-10 * scale)
    assert mur.grad.item() == pytest.approx(gmu_ref, rel=1e-10)
    assert lamr.grad.item() == pytest.approx(glam_ref, rel=1e-10, abs=1e-12 * abs(gmu_ref))


@pytest.mark.parametrize("dim", [3, 2])
def test_stored_svd_stress_is_bitwise_the_law_float32(dim):
    """Verify the taped kernel's τ is bitwise the law's function (what the untaped fused kernels use), float32."""
    import warp as wp

    from physim.mpm.materials.elastic_kernels import make_elastic_funcs

    T, K = _kernels(dim, torch.float32)
    E = make_elastic_funcs(T)
    gen = torch.Generator().manual_seed(0)
    n = 3000
    F = (torch.eye(dim) + 0.3 * torch.randn(n, dim, dim, generator=gen)).contiguous()
    kind_of = torch.randint(0, 3, (n,), generator=gen, dtype=torch.int32)
    table = torch.tensor([[1.0, 3e3, 5e3] + [0.0] * (mb.TABLE_WIDTH - 3)] * 3)
    kinds = torch.tensor([mb.KIND_COROTATED, mb.KIND_NEOHOOKEAN, mb.KIND_STVK], dtype=torch.int32)

    @wp.kernel
    def direct(F: wp.array(dtype=T.mat), body: wp.array(dtype=wp.int32), kinds: wp.array(dtype=wp.int32),
               table: wp.array2d(dtype=T.float), tau: wp.array(dtype=T.mat)):
        p = wp.tid()
        b = body[p]
        k = kinds[b]
        if k == mb.KIND_COROTATED:
            tau[p] = E.corotated(F[p], table[b, 1], table[b, 2])
        if k == mb.KIND_NEOHOOKEAN:
            tau[p] = E.neohookean(F[p], table[b, 1], table[b, 2])
        if k == mb.KIND_STVK:
            tau[p] = E.stvk(F[p], table[b, 1], table[b, 2])

    args = [wp.from_torch(F, dtype=T.mat), wp.from_torch(kind_of), wp.from_torch(kinds),
            wp.from_torch(table, dtype=T.float)]
    a, b = wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.mat)
    U, s, V = wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.vec), wp.zeros(n, dtype=T.mat)
    wp.launch(K.stress_elastic, n, inputs=args, outputs=[a, U, s, V])
    wp.launch(direct, n, inputs=args, outputs=[b])
    assert torch.equal(wp.to_torch(a), wp.to_torch(b))
    # and the stored SVD is an SVD of F: Warp's float32 svd3 reconstructs F to about 3e-7 for most
    # F (median) but to 4e-3 for a few of these strongly distorted ones; U and V are orthogonal
    Ut, st, Vt = wp.to_torch(U), wp.to_torch(s), wp.to_torch(V)
    cor = kind_of == mb.KIND_COROTATED
    err = (Ut @ torch.diag_embed(st) @ Vt.transpose(-1, -2) - F).abs().amax((1, 2))[cor]
    assert float(err.median()) < 2e-6 and float(err.max()) < 1e-2
    eye = torch.eye(dim)
    for Q in (Ut[cor], Vt[cor]):
        assert torch.allclose(Q.transpose(-1, -2) @ Q, eye.expand_as(Q), atol=1e-5)


def test_elastic_and_von_mises_bodies_share_the_stress_adjoints():
    """Verify d x_T / d(E of both bodies, v0) when the elastic kernel and Warp's adjoint share a taped substep."""
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=3, dtype="float64")
    bodies = [Body(name="a", shape=Box(center=(0.35, 0.4), size=(0.2, 0.2)), material=Elastic(E=2e4, nu=0.3),
                   velocity=(1.0, -1.0)),
              Body(name="b", shape=Box(center=(0.62, 0.4), size=(0.2, 0.2)),
                   material=VonMises(E=3e4, nu=0.3, yield_stress=300.0), velocity=(-1.0, -0.5))]
    sim = Simulator(cfg, bodies)
    v0 = sim.reset().v

    def f(ea, eb, v):
        sim.params["a.E"] = 2e4 * ea
        sim.params["b.E"] = 3e4 * eb
        return sim.rollout(sim.reset(v=v), steps=3, checkpoint_every=2).state.x

    one = torch.tensor(1.0, dtype=f64)
    assert_grad_matches_fd(f, [one, one.clone(), v0], eps=1e-6, rtol=1e-5)
