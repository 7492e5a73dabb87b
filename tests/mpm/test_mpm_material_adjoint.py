"""Verify the hand-written adjoints of the taped fluid, von Mises and rigid laws (`materials.taped_kernels`).

`stress_stored` (Newtonian stress; Hencky stress of von Mises, storing the SVD of F) and
`project_stored` (von Mises return mapping, storing the SVD of the trial F; the fluids' F ← J^{1/d} I)
and their adjoints, kernel by kernel in float64: against central finite differences
(`assert_grad_matches_fd`) and against Warp's automatic adjoint of the law's own function
(the previous taped path), for random F, F = I (all singular values equal), a uniaxial stretch
(two equal), nearly coincident singular values, a plastic case that yields with two coincident
singular values, clamped singular values and an inverted F. Their forward values must be
bitwise those of the laws' functions (float32), which the untaped fused kernels call. A small
simulator scene with von Mises, fluid and rigid bodies checks the kernels together on the tape.
"""

import functools

import pytest
import torch

from physim.mpm import Body, Box, NewtonianFluid, Rigid, SceneConfig, Simulator, VonMises
from physim.mpm.kernel_types import kernel_types
from physim.mpm.materials import base as mb
from physim.runtime import init_warp
from physim.testing import assert_grad_matches_fd

f64 = torch.float64
P0 = mb.COL_P0
ALL = frozenset(range(mb.KIND_NEURAL + 1))


def _kernels(dim, dtype=f64):
    from physim.mpm.materials.taped_kernels import make_taped_material_kernels

    init_warp()
    T = kernel_types(dim, dtype)
    return T, make_taped_material_kernels(T, ALL)


class _Law(torch.autograd.Function):
    """τ(F, C, table) through `stress_stored` (``op="stress"``) or F_new(F, table) through `project_stored`."""

    @staticmethod
    def forward(ctx, F, C, table, kind, op):
        wp = init_warp()
        n, dim = F.shape[0], F.shape[-1]
        T, K = _kernels(dim, F.dtype)
        Fw = wp.from_torch(F.detach().contiguous(), dtype=T.mat)
        Cw = wp.from_torch(C.detach().contiguous(), dtype=T.mat)
        tw = wp.from_torch(table.detach().contiguous(), dtype=T.float)
        body = wp.zeros(n, dtype=wp.int32)
        kinds = wp.array([kind], dtype=wp.int32)
        out, U, s, V = (wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.vec),
                        wp.zeros(n, dtype=T.mat))
        if op == "stress":
            wp.launch(K.stress_stored, n, inputs=[Fw, Cw, body, kinds, tw], outputs=[out, U, s, V])
        else:
            flags = wp.zeros(2, dtype=wp.int32)
            wp.launch(K.project_stored, n, inputs=[Fw, body, kinds, tw], outputs=[out, U, s, V, flags])
        ctx.saved = (K, T, Fw, Cw, body, kinds, tw, out, U, s, V, n, op)
        return wp.to_torch(out).clone()

    @staticmethod
    def backward(ctx, g):
        wp = init_warp()
        K, T, Fw, Cw, body, kinds, tw, out, U, s, V, n, op = ctx.saved
        gF, gC = wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.mat)
        gt = wp.zeros(tw.shape, dtype=T.float)
        gw = wp.from_torch(g.contiguous(), dtype=T.mat)
        if op == "stress":
            wp.launch(K.stress_stored_adjoint, n, inputs=[Fw, Cw, body, kinds, tw, U, s, V, gw, 1],
                      outputs=[gF, gC, gt])
        else:
            wp.launch(K.project_stored_adjoint, n, inputs=[Fw, body, kinds, tw, out, U, s, V, gw, 1], outputs=[gF, gt])
        return wp.to_torch(gF).clone(), wp.to_torch(gC).clone(), wp.to_torch(gt).clone(), None, None


@functools.cache
def _auto_kernel(dim, dtype, law):
    """A kernel evaluating one law's function as the fused kernels do, to be differentiated by Warp."""
    import warp as wp

    from physim.mpm.materials.elastic_kernels import make_elastic_funcs
    from physim.mpm.materials.fluid_kernels import make_fluid_funcs
    from physim.mpm.materials.von_mises_kernels import make_von_mises_funcs

    T = kernel_types(dim, dtype)
    mat, flt = T.mat, T.float
    E, fl, vm = make_elastic_funcs(T), make_fluid_funcs(T), make_von_mises_funcs(T)

    @wp.kernel
    def auto(F: wp.array(dtype=mat), C: wp.array(dtype=mat), t: wp.array2d(dtype=flt), out: wp.array(dtype=mat)):
        p = wp.tid()
        if wp.static(law == "hencky"):
            out[p] = E.hencky(F[p], t[0, 1], t[0, 2], t[0, P0 + 1])
        if wp.static(law == "newtonian"):
            out[p] = fl.newtonian(F[p], C[p], t[0, P0], t[0, P0 + 1], t[0, P0 + 2], t[0, P0 + 3])
        if wp.static(law == "von_mises"):
            out[p] = vm(F[p], t[0, 1], t[0, P0], t[0, P0 + 1])
        if wp.static(law == "volumetric"):
            out[p] = fl.volumetric(F[p])

    return auto


def _auto_reference(law, F, C, table, g):
    """(out, ∂F, ∂C, ∂table) from Warp's automatic adjoint of the law's function."""
    import warp as wp

    n, dim = F.shape[0], F.shape[-1]
    T = kernel_types(dim, F.dtype)
    Fw = wp.from_torch(F.contiguous().clone(), dtype=T.mat, requires_grad=True)
    Cw = wp.from_torch(C.contiguous().clone(), dtype=T.mat, requires_grad=True)
    tw = wp.from_torch(table.contiguous().clone(), dtype=T.float, requires_grad=True)
    out = wp.zeros(n, dtype=T.mat, requires_grad=True)
    tape = wp.Tape()
    with tape:
        wp.launch(_auto_kernel(dim, F.dtype, law), n, inputs=[Fw, Cw, tw], outputs=[out])
    out.grad = wp.from_torch(g.contiguous(), dtype=T.mat)
    tape.backward()
    return (wp.to_torch(out).clone(), wp.to_torch(Fw.grad).clone(), wp.to_torch(Cw.grad).clone(),
            wp.to_torch(tw.grad).clone())


def _rot(k, dim, gen):
    Q, _ = torch.linalg.qr(torch.randn(k, dim, dim, generator=gen, dtype=f64))
    return Q * torch.linalg.det(Q).sign()[:, None, None]


def _deformations(dim):
    """Named batches of F: random, identity, uniaxial, nearly coincident σ, coincident yielding, clamped, inverted."""
    gen = torch.Generator().manual_seed(3)
    eye = torch.eye(dim, dtype=f64)

    def with_sigma(sig):
        k = 4
        return (_rot(k, dim, gen) @ torch.diag_embed(torch.tensor(sig, dtype=f64).expand(k, dim))
                @ _rot(k, dim, gen).transpose(-1, -2))

    return {
        "random": eye + 0.2 * torch.randn(4, dim, dim, generator=gen, dtype=f64),
        "identity": eye.expand(4, dim, dim).clone(),
        "uniaxial": torch.diag(torch.tensor([1.3, 1.0, 1.0][:dim], dtype=f64)).expand(4, dim, dim).clone(),
        "near_coincident": with_sigma([1.2, 1.2 * (1 + 1e-9), 0.9][:dim]),
        "coincident_yielding": with_sigma([1.25, 1.25, 0.7] if dim == 3 else [1.25, 0.7]),
        "clamped": with_sigma([1.1, 0.03, 0.9][:dim]),
        "inverted": with_sigma([1.1, 0.95, -0.8][:dim]),
    }


def _table(dtype=f64, **cols):
    t = torch.zeros(1, mb.TABLE_WIDTH, dtype=dtype)
    t[0, mb.COL_RHO] = 1.0
    for col, value in cols.items():
        t[0, int(col[1:])] = value
    return t


# von Mises: μ = 1e4, λ = 1.5e4, σ_min = 0.05; yield stress low (most cases yield) or high (none do)
MU, LAM, SMIN = 1.0e4, 1.5e4, 0.05


def _vm_table(yield_stress, dtype=f64):
    return _table(dtype, c1=MU, c2=LAM, **{f"c{P0}": yield_stress, f"c{P0 + 1}": SMIN})


def _newt_table(gamma, dtype=f64):
    return _table(dtype, **{f"c{P0}": 2.0e4, f"c{P0 + 1}": 3.0, f"c{P0 + 2}": gamma, f"c{P0 + 3}": 5.0})


LAWS = {  # law -> (kind, op, table, differentiable columns)
    "hencky": (mb.KIND_VON_MISES, "stress", lambda: _vm_table(1e3), [1, 2]),
    "von_mises": (mb.KIND_VON_MISES, "project", lambda: _vm_table(1e3), [1, P0]),
    "von_mises_elastic": (mb.KIND_VON_MISES, "project", lambda: _vm_table(1e7), [1, P0]),
    "newtonian": (mb.KIND_NEWTONIAN, "stress", lambda: _newt_table(1.0), [P0, P0 + 1, P0 + 3]),
    "newtonian_tait": (mb.KIND_NEWTONIAN, "stress", lambda: _newt_table(7.0), [P0, P0 + 1, P0 + 3]),
    "volumetric": (mb.KIND_NEWTONIAN, "project", lambda: _newt_table(1.0), []),
}
SVD_CASES = ("random", "identity", "uniaxial", "near_coincident", "coincident_yielding", "clamped", "inverted")
CASES = [(law, c) for law in ("hencky", "von_mises") for c in SVD_CASES]
CASES += [("von_mises_elastic", "random"), ("volumetric", "random"), ("volumetric", "identity")]
CASES += [(law, c) for law in ("newtonian", "newtonian_tait") for c in ("random", "identity")]


@pytest.mark.parametrize(("law", "case"), CASES)
@pytest.mark.parametrize("dim", [3, 2])
def test_material_adjoint_matches_fd_and_warp(dim, law, case):
    """Verify ∂/∂(F, C, parameters) of the hand-written adjoints against FD and Warp's automatic adjoint."""
    kind, op, make_table, cols = LAWS[law]
    F = _deformations(dim)[case]
    gen = torch.Generator().manual_seed(7)
    C = 5.0 * torch.randn(F.shape, generator=gen, dtype=f64)
    base = make_table()
    scale = base[0, cols].clone()
    if law.startswith("von_mises") and case in ("random", "coincident_yielding", "uniaxial", "clamped"):
        s = torch.linalg.svdvals(F)  # the case is the plastic one it claims to be
        eps = torch.log(s.clamp(min=SMIN))
        dev = eps - eps.mean(-1, keepdim=True)
        k = (2.0 / 3.0) ** 0.5 * float(base[0, P0]) / (2 * MU)
        assert bool((dev.norm(dim=-1) > k * 1.5).all()) == (law == "von_mises")

    def f(F, C, p):
        table = base.clone()
        table[0, cols] = scale * p
        return _Law.apply(F, C, table, kind, op)

    newt_stress = kind == mb.KIND_NEWTONIAN and op == "stress"
    wrt = [0, 1, 2] if newt_stress else ([0, 2] if cols else [0])  # only the Newtonian stress reads C
    assert_grad_matches_fd(f, [F, C, torch.ones(len(cols), dtype=f64)], eps=1e-6, rtol=1e-6, wrt=wrt)

    # the same numbers as Warp's automatic adjoint of the law's function (which replays the SVDs)
    g = torch.randn(F.shape, generator=torch.Generator().manual_seed(5), dtype=f64)
    Fr, Cr, tr = F.clone().requires_grad_(True), C.clone().requires_grad_(True), base.clone().requires_grad_(True)
    out = _Law.apply(Fr, Cr, tr, kind, op)
    out.backward(g)
    auto = "newtonian" if law.startswith("newtonian") else ("von_mises" if law.startswith("von_mises") else law)
    out_ref, gF_ref, gC_ref, gt_ref = _auto_reference(auto, F, C, base, g)
    assert torch.equal(out.detach(), out_ref)
    assert bool(torch.isfinite(Fr.grad).all())
    ref = float(gF_ref.abs().max()) + 1e-300
    assert torch.allclose(Fr.grad, gF_ref, rtol=0.0, atol=1e-10 * ref)
    if newt_stress:
        assert torch.allclose(Cr.grad, gC_ref, rtol=0.0, atol=1e-10 * float(gC_ref.abs().max()))
    for c in cols:
        assert tr.grad[0, c].item() == pytest.approx(gt_ref[0, c].item(), rel=1e-9, abs=1e-12 * ref)


@pytest.mark.parametrize("dim", [3, 2])
def test_stored_kernels_are_bitwise_the_laws_float32(dim):
    """Verify the taped kernels' τ and projected F are bitwise the laws' functions (float32, mixed bodies)."""
    import warp as wp

    from physim.mpm.materials.elastic_kernels import make_elastic_funcs
    from physim.mpm.materials.fluid_kernels import make_fluid_funcs
    from physim.mpm.materials.von_mises_kernels import make_von_mises_funcs

    T, K = _kernels(dim, torch.float32)
    E, fl, vm = make_elastic_funcs(T), make_fluid_funcs(T), make_von_mises_funcs(T)
    gen = torch.Generator().manual_seed(0)
    n = 3000
    F = (torch.eye(dim) + 0.3 * torch.randn(n, dim, dim, generator=gen)).contiguous()
    C = (5.0 * torch.randn(n, dim, dim, generator=gen)).contiguous()
    body = torch.randint(0, 3, (n,), generator=gen, dtype=torch.int32)
    table = torch.cat([_vm_table(1e3, torch.float32), _newt_table(7.0, torch.float32),
                       _table(torch.float32)]).contiguous()
    kinds = torch.tensor([mb.KIND_VON_MISES, mb.KIND_NEWTONIAN, mb.KIND_RIGID], dtype=torch.int32)

    @wp.kernel
    def direct(F: wp.array(dtype=T.mat), C: wp.array(dtype=T.mat), body: wp.array(dtype=wp.int32),
               kinds: wp.array(dtype=wp.int32), t: wp.array2d(dtype=T.float), tau: wp.array(dtype=T.mat),
               Fn: wp.array(dtype=T.mat)):
        p = wp.tid()
        b = body[p]
        k = kinds[b]
        Fn[p] = F[p]
        if k == mb.KIND_VON_MISES:
            tau[p] = E.hencky(F[p], t[b, 1], t[b, 2], t[b, P0 + 1])
            Fn[p] = vm(F[p], t[b, 1], t[b, P0], t[b, P0 + 1])
        if k == mb.KIND_NEWTONIAN:
            tau[p] = fl.newtonian(F[p], C[p], t[b, P0], t[b, P0 + 1], t[b, P0 + 2], t[b, P0 + 3])
            Fn[p] = fl.volumetric(F[p])

    args = [wp.from_torch(F, dtype=T.mat), wp.from_torch(C, dtype=T.mat), wp.from_torch(body), wp.from_torch(kinds),
            wp.from_torch(table, dtype=T.float)]
    svd = [wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.vec), wp.zeros(n, dtype=T.mat)]
    tau_a, tau_b = wp.full(n, value=T.mat(*([7.0] * dim * dim)), dtype=T.mat), wp.zeros(n, dtype=T.mat)
    Fn_a, Fn_b = wp.zeros(n, dtype=T.mat), wp.zeros(n, dtype=T.mat)
    wp.launch(K.stress_stored, n, inputs=args, outputs=[tau_a, *svd])
    wp.launch(K.project_stored, n, inputs=[args[0], *args[2:]], outputs=[Fn_a, *svd, wp.zeros(2, dtype=wp.int32)])
    wp.launch(direct, n, inputs=args, outputs=[tau_b, Fn_b])
    assert torch.equal(wp.to_torch(tau_a), wp.to_torch(tau_b))  # the rigid particles' τ is written (zero)
    assert torch.equal(wp.to_torch(Fn_a), wp.to_torch(Fn_b))
    yielded = (wp.to_torch(Fn_a) != F).any(-1).any(-1) & (body == 0)
    assert int(yielded.sum()) > n // 10  # the plastic branch ran


def test_von_mises_fluid_and_rigid_bodies_on_the_tape():
    """Verify d x_T / d(E, η, v0) of a scene whose taped substeps use only hand-written material adjoints."""
    cfg = SceneConfig(dim=2, grid=16, dt=4e-4, substeps=3, dtype="float64")
    bodies = [Body(name="a", shape=Box(center=(0.3, 0.4), size=(0.18, 0.18)),
                   material=VonMises(E=3e4, nu=0.3, yield_stress=200.0), velocity=(1.0, -1.0)),
              Body(name="w", shape=Box(center=(0.55, 0.4), size=(0.18, 0.18)),
                   material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.5, density=1e3), velocity=(-1.0, -0.5)),
              Body(name="r", shape=Box(center=(0.75, 0.45), size=(0.12, 0.12)), material=Rigid(density=500.0),
                   velocity=(-0.5, 0.3))]
    sim = Simulator(cfg, bodies)
    be = sim._ensure_backend()
    assert be.stored_stress is not None and be.hand_project and not be.auto_stress
    be.hand_rigid = True  # off by default (does not pay at cpu quality), checked here
    v0 = sim.reset().v

    def f(ea, eta, v):
        sim.params["a.E"] = 3e4 * ea
        sim.params["w.viscosity"] = 0.5 * eta
        return sim.rollout(sim.reset(v=v), steps=3, checkpoint_every=2).state.x

    one = torch.tensor(1.0, dtype=f64)
    assert_grad_matches_fd(f, [one, one.clone(), v0], eps=1e-6, rtol=1e-5)


def test_rigid_shape_matching_adjoint_3d():
    """Verify d x_T / d(v0, densities) of a spinning rigid cube in a fluid (hand-written `rigid_apply` adjoint).

    The hand-written adjoint is off by default (it does not pay at cpu quality); switched on here.
    """
    cfg = SceneConfig(dim=3, grid=12, dt=4e-4, substeps=2, dtype="float64")
    bodies = [Body(name="r", shape=Box(center=(0.5, 0.5, 0.5), size=(0.2, 0.16, 0.18)), material=Rigid(density=600.0)),
              Body(name="w", shape=Box(center=(0.5, 0.3, 0.5), size=(0.4, 0.12, 0.4)),
                   material=NewtonianFluid(bulk_modulus=2e3, viscosity=0.2, density=1e3))]
    sim = Simulator(cfg, bodies)
    sim._ensure_backend().hand_rigid = True
    s0 = sim.reset()
    rigid = sim.material_id == 0
    r = s0.x - s0.x[rigid].mean(0)
    v0 = s0.v.clone()
    v0[rigid] = torch.cross(torch.tensor([[1.0, 2.0, -1.5]], dtype=f64).expand(int(rigid.sum()), 3), r[rigid], dim=1)
    v0[rigid] += torch.tensor([0.2, -0.5, 0.1], dtype=f64)

    def f(v, rho_r, rho_w):
        sim.params["r.density"] = 600.0 * rho_r
        sim.params["w.density"] = 1e3 * rho_w
        st = sim.rollout(sim.reset(v=v), steps=2, checkpoint_every=1).state
        return st.x, st.v

    one = torch.tensor(1.0, dtype=f64)
    assert_grad_matches_fd(f, [v0, one, one.clone()], eps=1e-6, rtol=1e-5)
