"""The Warp side of the simulator: static arrays, kernel variant, the substep operation.

Nothing here leaks out of `Simulator`: inputs and outputs are torch tensors. When the
operation is recorded for backward, every intermediate array is fresh (the tape
replays adjoints and needs the values as they were); without recording, grid and
intermediate particle buffers are reused across substeps and steps, and only the
returned arrays are new.
"""

from __future__ import annotations

import weakref
from collections import defaultdict

import numpy as np
import torch

from physim.autodiff import WarpOp
from physim.errors import SimulationDiverged
from physim.mpm.colliders import MeshCollider
from physim.mpm.kernel_types import kernel_types
from physim.mpm.materials.base import (
    ELASTIC_STRESS,
    HAND_WRITTEN_PROJECTION,
    HAND_WRITTEN_STRESS,
    KIND_COROTATED,
    KIND_DRUCKER_PRAGER,
    KIND_HERSCHEL_BULKLEY,
    KIND_NEURAL,
    KIND_NEWTONIAN,
    KIND_RIGID,
    KIND_VON_MISES,
    LAW_MASK,
    STORED_STRESS,
)
from physim.mpm.threaded_substeps import MAX_WORKERS, ThreadedSubsteps
from physim.mpm.threads import worker_pool
from physim.runtime import init_warp

__all__ = ["WarpBackend"]

MIN_PARTICLES = 1024  # fewest particles per CPU worker of a threaded substep
MIN_BLOCKS = 16  # fewest grid blocks per CPU worker of a threaded grid update


class WarpBackend:
    """Static model and differentiable substep operation of one `Simulator`."""

    def __init__(self, sim):
        wp = init_warp()
        from physim.mpm.rigid_kernels import make_rigid_kernels
        from physim.mpm.transfer_kernels import BC_SEPARATE, BC_SLIP, BC_STICKY, BLOCK, make_transfer_kernels

        self.wp = wp
        self.sim = sim
        cfg = sim.cfg
        self.cfg = cfg
        self.T = T = kernel_types(cfg.dim, cfg.torch_dtype)
        dev = "cpu" if sim.device.type == "cpu" else f"cuda:{sim.device.index or 0}"
        self.device = dev
        # float32 (production) compiles only the laws present: a fluid-only kernel runs about 25 %
        # faster than one with every law. float64 (gradient checks) compiles every law, which costs
        # about 25 % more compile time than one law, so that checks of all materials share one
        # cached variant per dimension.
        present = frozenset(b.material.kind & LAW_MASK for b in sim.bodies)
        laws = present if cfg.dtype == "float32" else frozenset(range(KIND_NEURAL + 1))
        self.has_rigid = any((b.material.kind & LAW_MASK) == KIND_RIGID for b in sim.bodies)
        has_mesh = any(isinstance(c, MeshCollider) for c in sim.colliders)
        K = make_transfer_kernels(T, laws, has_mesh, bool(sim.colliders))
        self.p2g, self.grid_update, self.g2p, self.mark_blocks = K.p2g, K.grid_update, K.g2p, K.mark_blocks
        self.stress, self.p2g_stored, self.p2g_stored_adjoint = K.stress, K.p2g_stored, K.p2g_stored_adjoint
        self.g2p_stored, self.project_trial = K.g2p_stored, K.project_trial
        self.g2p_stored_adjoint, self.grid_update_adjoint = K.g2p_stored_adjoint, K.grid_update_adjoint
        self.grid_update_collider_adjoint = K.grid_update_collider_adjoint
        # the taped grid update's adjoint is hand-written, except with mesh colliders (Warp's own)
        self.hand_grid_adjoint = not sim.colliders or K.grid_update_collider_adjoint is not None
        self.grid_update_adjoint_blocks = K.grid_update_adjoint_blocks
        from physim.mpm.materials.elastic_kernels import make_elastic_stress_kernels
        from physim.mpm.materials.taped_kernels import make_taped_material_kernels

        # taped stress: the elastic laws by a kernel with a hand-written adjoint (which reuses the stored
        # SVD of the corotated law), the fluid, von Mises and rigid ones likewise (`taped_kernels`), the
        # other laws present by `stress` with Warp's automatic adjoint
        self.elastic_stress = make_elastic_stress_kernels(T, laws) if present & ELASTIC_STRESS else None
        self.stored_stress = make_taped_material_kernels(T, laws) if present & STORED_STRESS else None
        self.auto_stress = bool(present - HAND_WRITTEN_STRESS)
        self.store_svd = KIND_COROTATED in present
        self.store_vm_svd = KIND_VON_MISES in present
        # only these laws' plastic projection changes F: without them the taped substep's trial F is the new F
        projecting = present & {KIND_VON_MISES, KIND_DRUCKER_PRAGER, KIND_NEWTONIAN, KIND_HERSCHEL_BULKLEY}
        self.projects = bool(projecting)
        # the projection's adjoint is hand-written unless another projecting law shares the scene
        self.hand_project = self.projects and projecting <= HAND_WRITTEN_PROJECTION
        if self.hand_project:
            self.stored_project = make_taped_material_kernels(T, laws)
        self.vecg, self.vecv = T.vecg, T.vec
        from physim.mpm.sort_kernels import make_sort_kernels

        (self.cell_keys, self.gather, self.gather_mat, self.scatter, self.gather_static, self.gather_j,
         self.scatter_j) = make_sort_kernels(T)
        self.p2g_fluid, self.g2p_fluid, self.grid_update_blocks = K.p2g_fluid, K.g2p_fluid, K.grid_update_blocks
        self.grid_update_marked = K.grid_update_marked
        # a scene of fluids only (stress and projection functions of J = det F) carries J instead of F
        # through its untaped substeps
        self.carry_j = all(b.material.kind in (KIND_NEWTONIAN, KIND_HERSCHEL_BULKLEY) for b in sim.bodies)
        # ... and, of Newtonian fluids only, its taped substeps too: the untaped kernels `p2g_fluid` and
        # `g2p_fluid` with hand-written adjoints (no F, stored stress or projection on the tape)
        self.taped_j = all(b.material.kind == KIND_NEWTONIAN for b in sim.bodies)
        self.p2g_fluid_adjoint, self.g2p_fluid_adjoint = K.p2g_fluid_adjoint, K.g2p_fluid_adjoint
        self.gather_j_adjoint, self.scatter_j_adjoint = K.gather_j_adjoint, K.scatter_j_adjoint
        if self.has_rigid:
            self.rigid_k = make_rigid_kernels(T)
            # the taped rigid motion (sums and per-particle motion) with a hand-written adjoint, all launches
            # packed (`_replay`); False: Warp's automatic adjoints (kept to compare against in the tests)
            self.hand_rigid = True
            self.rigid_sums1, self.rigid_sums2, self.rigid_apply = (self.rigid_k.rigid_sums1, self.rigid_k.rigid_sums2,
                                                                    self.rigid_k.rigid_apply)

        n = sim.particle_count
        self.n = n
        res = cfg.resolution
        self.res = wp.vec3i(res[0], res[1], res[2] if cfg.dim == 3 else 1)
        self.nodes = int(np.prod(res))
        nb = [-(-r // BLOCK) for r in res] + ([1] if cfg.dim == 2 else [])
        self.nb = wp.vec3i(*nb)
        self.blocks = int(np.prod(nb))
        self.nb_shape = tuple(nb[: cfg.dim])
        self.block_nodes = BLOCK**cfg.dim
        # every block, in order: the list of a GPU launch
        self.all_blocks = wp.array(np.arange(self.blocks, dtype=np.int32), dtype=wp.int32, device=dev)
        self.dx = cfg.spacing
        self.bc = {"sticky": BC_STICKY, "slip": BC_SLIP, "separate": BC_SEPARATE}[cfg.boundary]
        self.gravity = T.vec(*cfg.gravity_vector)
        self.kinds = wp.array(np.array([b.material.kind for b in sim.bodies], dtype=np.int32), dtype=wp.int32,
                              device=dev)

        # colliders (at least one row so that arrays are never empty)
        cols = sim.colliders
        self.ncol = len(cols)
        ctype = [c.type_code for c in cols] or [0]
        cparam = [c.shape_params() for c in cols] or [(0.0, 0.0, 0.0)]
        csticky = [int(c.sticky) for c in cols] or [0]
        self.meshes = []
        mesh_ids = []
        for c in cols:
            if isinstance(c, MeshCollider):
                from physim.mpm.mesh_io import read_surface

                pts, tris = read_surface(c.path)
                m = wp.Mesh(points=wp.array((pts * c.scale).astype(np.float32), dtype=wp.vec3, device=dev),
                            indices=wp.array(tris.reshape(-1), dtype=wp.int32, device=dev))
                self.meshes.append(m)
                mesh_ids.append(m.id)
            else:
                mesh_ids.append(0)
        self.ctype = wp.array(np.array(ctype, dtype=np.int32), dtype=wp.int32, device=dev)
        self.cparam = wp.array(np.array(cparam, dtype=np.float64), dtype=T.vec3, device=dev)
        self.csticky = wp.array(np.array(csticky, dtype=np.int32), dtype=wp.int32, device=dev)
        self.cmesh = wp.array(np.array(mesh_ids or [0], dtype=np.uint64), dtype=wp.uint64, device=dev)

        # rigid bodies: particle lists, body slots and rest offsets from the initial sampling
        if self.has_rigid:
            rigid_bodies = [i for i, b in enumerate(sim.bodies) if (b.material.kind & LAW_MASK) == KIND_RIGID]
            mid = sim.material_id.cpu().numpy()
            ridx = np.concatenate([np.nonzero(mid == b)[0] for b in rigid_bodies]).astype(np.int32)
            rbody = np.concatenate([np.full((mid == b).sum(), k) for k, b in enumerate(rigid_bodies)]).astype(
                np.int32)
            x0 = sim._x0.cpu().numpy().astype(np.float64)
            vol = sim.particle_volume.cpu().numpy()
            r0 = np.zeros((len(ridx), cfg.dim))
            for b in rigid_bodies:
                sel = mid[ridx] == b
                pts = x0[ridx[sel]]
                w = vol[ridx[sel]]
                r0[sel] = pts - (w[:, None] * pts).sum(0) / w.sum()
            rslot = np.full(n, -1, dtype=np.int32)
            rslot[ridx] = np.arange(len(ridx), dtype=np.int32)
            self.rigid_count = len(rigid_bodies)
            self.rbody = wp.array(rbody, dtype=wp.int32, device=dev)
            self.r0 = wp.array(r0, dtype=T.vec, device=dev)
            self.rslot = wp.array(rslot, dtype=wp.int32, device=dev)
            self.rigid_particles = len(ridx)
        else:
            self.rslot = wp.full(n, -1, dtype=wp.int32, device=dev)
            self.rigid_particles = 0
        self.body = wp.array(sim.material_id.cpu().numpy().astype(np.int32), dtype=wp.int32, device=dev)
        self.vol = wp.array(sim.particle_volume.cpu().numpy(), dtype=T.float, device=dev)

        # untaped CPU substeps: particle ranges and grid blocks split over this many threads (a
        # worker's range is never smaller than MIN_PARTICLES or MIN_BLOCKS: below that the hand-over
        # costs more than it saves); every worker scatters into its own copy of the grid
        self.threads = sim.cpu_threads if dev == "cpu" else 1
        self.particle_workers = max(1, min(self.threads, n // MIN_PARTICLES))

        d = cfg.dim
        self.no_stress = torch.zeros(1, d, d, device=sim.device, dtype=sim.dtype)
        self._pool: dict = {}
        # packed launches of the taped substeps and their adjoints, one per call site (`_replay`)
        self._cmds: dict = {}
        self._sort_adj = None  # hand-written adjoints of the taped gathers and scatter, built on first use
        self.replay = sim.device.type == "cpu"
        self._recycled: defaultdict = defaultdict(list)  # (shape, dtype, grad) -> free taped arrays
        self._lease: list | None = None
        self._grid_clean = False
        self.flags: torch.Tensor | None = None
        self._threaded = None  # the multi-worker untaped path (physim.mpm.threaded_substeps), built on first use
        self.grid_op = WarpOp(self._launch_p2g, (T.vec, T.vec, T.mat, T.mat, T.float, T.mat), name="mpm.p2g")
        self.op = WarpOp(self._launch, (T.vec, T.vec, T.mat, T.mat, T.float, T.float, T.float, T.mat),
                         name="mpm.substeps")

    # -------------------------------------------------------------------------------------- pool
    def _buf(self, key, shape, dtype, fresh: bool = False):
        """A reusable buffer; `fresh` (on the tape, where values must survive until backward) a new one."""
        wp = self.wp
        if fresh:
            return wp.empty(shape, dtype=dtype, device=self.device)
        arr = self._pool.get(key)
        if arr is None:
            arr = wp.empty(shape, dtype=dtype, device=self.device)
            self._pool[key] = arr
        return arr

    def _taped(self, shape, dtype, *, grad: bool = True, zero: bool = True, pool: str = ""):
        """An array of the taped substeps, recycled once the tape holding it is freed.

        Fresh allocations on every taped substep cost more than the kernels at 64³ (page
        faults, and torch's multi-threaded zero fill on a busy machine); these arrays never
        leave the operation, so they come from a free list that is refilled when the tape
        (hence its backward) is gone. Gradient buffers are zeroed on hand-out, values when
        `zero` (a kernel accumulates into them). `pool`: a free list of its own (arrays whose `grad`
        the caller replaces, which must not be handed to callers that expect none).
        """
        key = (shape, dtype, grad, pool)
        free = self._recycled[key]
        if free:
            a = free.pop()
            if zero:
                a.zero_()
            if grad:
                a.grad.zero_()
        else:
            # values that a kernel writes in full need no zero fill (their gradient does)
            wp = self.wp
            a = (wp.zeros if zero else wp.empty)(shape, dtype=dtype, device=self.device)
            if grad:
                a.requires_grad = True  # allocates a zero gradient
        self._lease.append((key, a))
        return a

    def _open_lease(self, rec: bool) -> None:
        """Tie this call's recycled arrays to the active tape: they return to the free list with it."""
        if not rec:
            self._lease = None
            return
        lease: list = []
        holder = _Lease()
        weakref.finalize(holder, _release, self._recycled, lease)
        self.wp._src.context.runtime.tape._physim_lease = holder
        self._lease = lease

    # -------------------------------------------------------------------------------------- launch
    def _replay(self, key: str, kernel, dim: int, inputs: list, outputs: list) -> None:
        """``wp.launch(kernel, dim, inputs, outputs)`` (not recorded on the tape) through a command packed once.

        A taped control step makes about 40 launches and its adjoint about 35 (Stabilizing), and
        `wp.launch` checks and packs every argument each time (about 17 µs a launch against 4 µs
        for replaying a packed command: docs/benchmarks.md, "MPM"). One packed command per call
        site `key` is kept instead; only the arguments that differ from its previous launch (an
        array by identity, anything else by value) and the dimension are packed again. On a GPU,
        or with ``replay`` off, a plain launch.
        """
        wp = self.wp
        if not self.replay:
            wp.launch(kernel, dim, inputs=inputs, outputs=outputs, device=self.device, record_tape=False)
            return
        args = [*inputs, *outputs]
        entry = self._cmds.get(key)
        if entry is None or entry[0].kernel is not kernel or len(entry[1]) != len(args):
            cmd = wp.launch(kernel, dim, inputs=inputs, outputs=outputs, device=self.device, record_tape=False,
                            record_cmd=True)
            self._cmds[key] = [cmd, args, dim]
        else:
            cmd, prev, pdim = entry
            array = wp.array
            for i, a in enumerate(args):
                b = prev[i]
                if a is b:
                    continue
                if type(a) is type(b):
                    if type(a) is array:
                        if a.dtype is b.dtype and a.ndim == b.ndim:
                            # an array of the type this argument was checked for at the first launch: its
                            # descriptor directly (`set_param_at_index` re-checks the type, about half the cost)
                            cmd.set_param_at_index_from_ctype(i, a.__ctype__())
                            prev[i] = a
                            continue
                    elif a == b:
                        continue
                cmd.set_param_at_index(i, a)
                prev[i] = a
            if dim != pdim:
                cmd.set_dim(dim)
                entry[2] = dim
        cmd.launch()

    def _launch(self, ctx, x, v, C, F, table, records, friction, tau_ext):
        """`records.shape[0]` substeps: sort by cell, run the fused kernels, unsort."""
        if not ctx.requires_grad and 1 < self.particle_workers <= MAX_WORKERS and not self.has_rigid:
            # several CPU threads, two hand-overs per substep (rigid bodies move particles between the
            # gather and the next scatter, and more than MAX_WORKERS workers do not fit the grid update's
            # bit masks: they take the three-phase loop below)
            if self._threaded is None:
                self._threaded = ThreadedSubsteps(self)
            return self._threaded.run(ctx, x, v, C, F, table, records, friction, tau_ext)
        wp, T, cfg = self.wp, self.T, self.cfg
        n, nodes, dev = self.n, self.nodes, ctx.device
        S = records.shape[0]
        rec = ctx.requires_grad
        dt = T.float(cfg.dt)
        inv_dx = T.float(1.0 / self.dx)
        force = ctx.zeros(max(self.ncol, 1), T.vec3)
        torque = ctx.zeros(max(self.ncol, 1), T.vec3)
        self._shared_grads = None  # grid gradient buffers shared by this call's taped substeps
        self._open_lease(rec)
        # CPU workers count divergence in their own rows (summed below: Warp's CPU atomics are not atomic)
        kw = 1 if rec else self.particle_workers
        flags_k = torch.zeros(kw, S, 2, dtype=torch.int32, device=self.sim.device)
        self.flags = flags_k[0]
        flags_all = wp.from_torch(self.flags, dtype=wp.int32)
        flags_w = wp.from_torch(flags_k, dtype=wp.int32)
        if not rec and self.ncol > 0 and self.threads > 1:  # collider reactions of workers 1, 2, ...
            force_w = ctx.zeros((self.threads - 1) * self.ncol, T.vec3)
            torque_w = ctx.zeros((self.threads - 1) * self.ncol, T.vec3)
        else:
            force_w = torque_w = None

        # cell order (integer permutation: not differentiated), then state and constants in that order
        keys = self._buf("keys", 2 * n, wp.int32)
        order = self._taped(2 * n, wp.int32, grad=False, zero=False) if rec else self._buf("order", 2 * n, wp.int32)
        if cfg.sort_particles:
            # integer keys and order: nothing to differentiate (Warp's adjoint would still run)
            wp.launch(self.cell_keys, n, inputs=[x, self.res, inv_dx], outputs=[keys, order], device=dev,
                      record_tape=False)
            wp.utils.radix_sort_pairs(keys, order, n)
        else:
            order.assign(np.arange(2 * n, dtype=np.int32) % max(n, 1))
        if rec:
            body = self._taped(n, wp.int32, grad=False, zero=False)
            vol = self._taped(n, T.float, grad=False, zero=False)
            rslot = self._taped(n, wp.int32, grad=False, zero=False)
            ridx = self._taped(max(self.rigid_particles, 1), wp.int32, grad=False, zero=False)
        else:
            body, vol = self._buf("body", n, wp.int32), self._buf("vol", n, T.float)
            rslot = self._buf("rslot", n, wp.int32)
            ridx = self._buf("ridx", max(self.rigid_particles, 1), wp.int32)
        wp.launch(self.gather_static, n, inputs=[order, self.body, self.vol, self.rslot],
                  outputs=[body, vol, rslot, ridx], device=dev, record_tape=False)  # constants: no gradient
        carry_j = self.carry_j and (not rec or self.taped_j)
        cur = self._particles(ctx, rec, "sorted", carry_j)
        gather = self.gather_j if carry_j else self.gather
        if rec:  # packed, with a hand-written adjoint (`_record_sort_adjoint`; Warp's costs about 3× the forward)
            key = "gather_j" if carry_j else "gather"
            self._replay(key, gather, n, [order, x, v, C, F], list(cur))
            self._record_sort_adjoint(key, order, list(cur), [x, v, C, F])
        else:
            wp.launch(gather, n, inputs=[order, x, v, C, F], outputs=list(cur), device=dev)
        if tau_ext.shape[0] == n:
            tau_s = ctx.zeros(n, T.mat) if rec else self._buf("tau", n, T.mat)
            if rec:
                self._replay("gather_mat", self.gather_mat, n, [order, tau_ext], [tau_s])
                self._record_sort_adjoint("gather_mat", order, [tau_s], [tau_ext])
            else:
                wp.launch(self.gather_mat, n, inputs=[order, tau_ext], outputs=[tau_s], device=dev)
            tau_ext = tau_s

        for s in range(S):
            xs, vs, Cs, Fs = cur
            if rec:
                grid, grid_v = self._taped_grid(ctx)
            else:  # one grid per CPU worker of the scatter, one after the other
                grid = self._buf("grid", nodes * self.particle_workers, self.vecg)
                if not self._grid_clean:
                    grid.zero_()
                grid_v = self._buf("grid_v", nodes, self.vecv)
            # without a tape (and without rigid bodies, which move particles after g2p) the blocks
            # of substep s > 0 were flagged by g2p of substep s - 1
            # (the fluid kernels flag them on the tape too)
            blist, nblk = self._active_blocks(xs, inv_dx, rec, marked=s > 0 and (carry_j or not rec)
                                              and not self.has_rigid)
            if rec and carry_j:  # Fs holds J; the untaped kernel, the adjoint recorded by hand
                args = [xs, vs, Cs, Fs, body, vol, self.kinds, table, self.res, inv_dx, dt, 0]
                self._replay("p2g_fluid", self.p2g_fluid, n, args, [grid])
                self._record_p2g_fluid_adjoint(args, grid, cur, table)
            elif rec:  # stress stored, so that the scatter's adjoint does not replay the material law
                tau = self._taped(n, T.mat, zero=False)
                self._taped_stress(Cs, Fs, body, table, tau_ext, tau)
                args = [xs, vs, Cs, tau, body, vol, table, self.res, inv_dx, dt]
                self._replay("p2g_stored", self.p2g_stored, n, args, [grid])
                self._record_p2g_adjoint(args, grid, cur, tau, table)
            elif carry_j:  # Fs holds J
                self._split(self.p2g_fluid, n, [xs, vs, Cs, Fs, body, vol, self.kinds, table, self.res, inv_dx, dt],
                            [[self._grid_copy(grid, w)] for w in range(self.particle_workers)])
            else:
                self._split(self.p2g, n, [xs, vs, Cs, Fs, body, vol, self.kinds, table, tau_ext, self.res, inv_dx, dt],
                            [[self._grid_copy(grid, w)] for w in range(self.particle_workers)])
            # without a tape the grid is cleared by the kernel that reads it last (saves a pass)
            # the grid update's adjoint is hand-written (about 3× cheaper than Warp's), but with meshes;
            # on a CPU one thread per block (its position decoded once for its nodes); untaped, the
            # blocks are split over the CPU workers, each node summing the workers' grid copies
            hand = not rec or self.hand_grid_adjoint
            upd = [grid, self.res, T.float(self.dx), dt, self.gravity, cfg.bound, self.bc, self.ncol, self.ctype,
                   self.cparam, self.cmesh, self.csticky, records, s, friction, int(not rec), blist, self.nb]
            if not rec and dev == "cpu":
                workers = max(1, min(self.threads, nblk // MIN_BLOCKS))
                self._split(self.grid_update_blocks, nblk, upd, [
                    [grid_v, *self._reaction_rows(w, force, torque, force_w, torque_w)] for w in range(workers)],
                    extra=[self.particle_workers])
            elif hand and dev == "cpu":  # taped, one grid copy
                self._replay("grid_update_taped", self.grid_update_blocks, nblk, [*upd, 0, 1], [grid_v, force, torque])
            else:
                wp.launch(self.grid_update, nblk * self.block_nodes, inputs=upd, outputs=[grid_v, force, torque],
                          device=dev, record_tape=not hand)
            if rec and hand:
                self._record_grid_adjoint(grid, grid_v, blist, nblk, dt, records, s, friction, force, torque)
            self._grid_clean = not rec
            outs = self._particles(ctx, rec, f"g2p{s % 2}", carry_j)
            if rec and carry_j:
                args = [xs, Fs, grid_v, self.res, inv_dx, dt, self.nb, 0]
                self._replay("g2p_fluid", self.g2p_fluid, n, args, [*outs, flags_all[s], self._marks(0)])
                self._record_g2p_fluid_adjoint(args, outs, Fs, grid_v)
            elif rec:  # the transfer with a hand-written adjoint, the projection (if any law has one) with Warp's
                Ft = self._taped(n, T.mat, zero=False) if self.projects else outs[3]
                args = [xs, Fs, grid_v, self.res, inv_dx, dt, int(not self.projects)]
                self._replay("g2p_stored", self.g2p_stored, n, args, [*outs[:3], Ft, flags_all[s]])
                self._record_g2p_adjoint(args, outs, Ft, Fs, grid_v)
                if self.projects:
                    self._taped_project(Ft, outs[3], body, table, flags_all[s])
            else:
                wouts = [[*outs, flags_w[w, s], self._marks(w)] for w in range(self.particle_workers)]
                if carry_j:
                    self._split(self.g2p_fluid, n, [xs, Fs, grid_v, self.res, inv_dx, dt, self.nb], wouts)
                else:
                    self._split(self.g2p, n, [xs, Fs, body, self.kinds, table, grid_v, self.res, inv_dx, dt, self.nb],
                                wouts)
            if self.has_rigid:
                outs = self._rigid(ctx, outs, table, body, vol, rslot, ridx, rec, tag=f"rigid{s % 2}")
            cur = outs
        if kw > 1:
            self.flags = flags_k.sum(0, dtype=torch.int32)
        self._sum_reactions(force, torque, force_w, torque_w)
        # fresh output tensors in particle-id order (every entry is written: no zero fill needed)
        final = self._fresh_particles(ctx, rec)
        scatter = self.scatter_j if carry_j else self.scatter
        if rec:
            key = "scatter_j" if carry_j else "scatter"
            self._replay(key, scatter, n, [order, *cur], list(final))
            self._record_sort_adjoint(key, order, list(final), list(cur))
        else:
            wp.launch(scatter, n, inputs=[order, *cur], outputs=list(final), device=dev)
        return (*final, force, torque)

    def _record_sort_adjoint(self, key: str, order, outs: list, ins: list) -> None:
        """Put the hand-written adjoint of a taped permutation (`gather`, `gather_j`, `gather_mat`, `scatter`,
        `scatter_j` of `ins` into `outs` by `order`) on the tape: the gradients permuted back, one line per
        particle (Warp's automatic adjoint of a gather replays it and adds with atomics). The J variants also
        carry ∂J = ∂(det F) and ∂F = ∂(J^{1/d} I) (`transfer_kernels`' `gather_j_adjoint`, `scatter_j_adjoint`)."""
        if key == "gather_j":
            grads = [a.grad if a.grad is not None else self._dummy(k, a) for k, a in zip("xvCF", ins)]
            self._record_adjoint("gather_j_adjoint", self.gather_j_adjoint, [order, ins[3], *(a.grad for a in outs)],
                                 grads)
            return
        if key == "scatter_j":
            self._record_adjoint("scatter_j_adjoint", self.scatter_j_adjoint,
                                 [order, ins[3], outs[3], *(a.grad for a in outs)], [a.grad for a in ins])
            return
        wp = self.wp
        if self._sort_adj is None:  # built on first use: a J-only scene never needs these kernels
            from physim.mpm.sort_kernels import make_sort_adjoint_kernels

            self._sort_adj = make_sort_adjoint_kernels(self.T)
        K = self._sort_adj
        if key == "gather":
            want = wp.vec4i(*(int(a.grad is not None) for a in ins))
            adj_in = [order, *(a.grad for a in outs), want]
            adj_out = [a.grad if a.grad is not None else self._dummy(f"sort{i}", a) for i, a in enumerate(ins)]
            kernel = K.gather_adjoint
        elif key == "scatter":
            adj_in, adj_out, kernel = [order, *(a.grad for a in outs)], [a.grad for a in ins], K.scatter_adjoint
        else:
            if ins[0].grad is None:
                return
            adj_in, adj_out, kernel = [order, outs[0].grad], [ins[0].grad], K.gather_mat_adjoint

        self._record_adjoint(key + "_adjoint", kernel, adj_in, adj_out)

    def _taped_stress(self, Cs, Fs, body, table, tau_ext, tau) -> None:
        """Kirchhoff stress of a taped substep into `tau` (every particle is written by one of the kernels)."""
        wp, n, dev = self.wp, self.n, self.device
        if self.auto_stress:
            wp.launch(self.stress, n, inputs=[Cs, Fs, body, self.kinds, table, tau_ext], outputs=[tau], device=dev)
        if self.stored_stress is not None:
            self._taped_stored_stress(Cs, Fs, body, table, tau)
        if self.elastic_stress is None:
            return
        # U, σ, V of each corotated particle, read by the adjoint instead of two new SVDs
        svd = self._svd_arrays(self.store_svd)
        K = self.elastic_stress
        self._replay("stress_elastic", K.stress_elastic, n, [Fs, body, self.kinds, table], [tau, *svd])
        tg = table.grad if table.requires_grad else self._dummy("table", table)
        adj_in = [Fs, body, self.kinds, table, *svd, tau.grad, int(table.requires_grad)]
        adj_out = [Fs.grad, tg]

        self._record_adjoint("stress_elastic_adjoint", K.stress_elastic_adjoint, adj_in, adj_out, dim=n)

    def _svd_arrays(self, store: bool):
        """U, σ, V arrays of a taped kernel that stores an SVD (placeholders when no particle needs one)."""
        T, n = self.T, self.n
        if store:
            return (self._taped(n, T.mat, grad=False, zero=False), self._taped(n, T.vec, grad=False, zero=False),
                    self._taped(n, T.mat, grad=False, zero=False))
        return self._no_svd(T.mat), self._no_svd(T.vec), self._no_svd(T.mat)

    def _taped_stored_stress(self, Cs, Fs, body, table, tau) -> None:
        """Stress of the fluid, von Mises and rigid particles, and its hand-written adjoint on the tape."""
        n = self.n
        K = self.stored_stress
        svd = self._svd_arrays(self.store_vm_svd)
        self._replay("stress_stored", K.stress_stored, n, [Fs, Cs, body, self.kinds, table], [tau, *svd])
        tg = table.grad if table.requires_grad else self._dummy("table", table)
        adj_in = [Fs, Cs, body, self.kinds, table, *svd, tau.grad, int(table.requires_grad)]
        adj_out = [Fs.grad, Cs.grad, tg]

        self._record_adjoint("stress_stored_adjoint", K.stress_stored_adjoint, adj_in, adj_out, dim=n)

    def _taped_project(self, Ft, F_out, body, table, flags) -> None:
        """Plastic projection of a taped substep: hand-written adjoint (von Mises, fluids) or Warp's."""
        wp, n, dev = self.wp, self.n, self.device
        if not self.hand_project:
            wp.launch(self.project_trial, n, inputs=[Ft, body, self.kinds, table], outputs=[F_out, flags], device=dev)
            return
        K = self.stored_project
        svd = self._svd_arrays(self.store_vm_svd)
        self._replay("project_stored", K.project_stored, n, [Ft, body, self.kinds, table], [F_out, *svd, flags])
        tg = table.grad if table.requires_grad else self._dummy("table", table)
        adj_in = [Ft, body, self.kinds, table, F_out, *svd, F_out.grad, int(table.requires_grad)]
        adj_out = [Ft.grad, tg]

        self._record_adjoint("project_stored_adjoint", K.project_stored_adjoint, adj_in, adj_out, dim=n)

    def _no_svd(self, dtype):
        """A one-entry placeholder for the SVD arrays of a scene without corotated particles."""
        key = ("no_svd", dtype)
        a = self._pool.get(key)
        if a is None:
            a = self._pool[key] = self.wp.zeros(1, dtype=dtype, device=self.device)
        return a

    def _record_p2g_adjoint(self, args, grid, cur, tau, table) -> None:
        """Put the hand-written adjoint of `p2g_stored` on the tape (about 3× cheaper than Warp's)."""
        xs, vs, Cs, _ = cur
        tg = table.grad if table.requires_grad else self._dummy("table", table)
        adj_in = [*args, grid.grad, int(table.requires_grad)]
        adj_out = [xs.grad, vs.grad, Cs.grad, tau.grad, tg]

        self._record_adjoint("p2g_stored_adjoint", self.p2g_stored_adjoint, adj_in, adj_out)

    def _record_adjoint(self, key: str, kernel, adj_in: list, adj_out: list, dim: int | None = None) -> None:
        """Put a hand-written adjoint kernel, launched over `dim` threads (default: the particles), on the tape.

        The arrays in `adj_in` / `adj_out` (gradients included) are those of this substep: the closure
        keeps them alive until the tape is reset, and `_replay` packs them into one command per `key`.
        """
        threads = self.n if dim is None else dim

        def backward():
            self._replay(key, kernel, threads, adj_in, adj_out)

        self.wp._src.context.runtime.tape.record_func(backward=backward, arrays=[])

    def _record_p2g_fluid_adjoint(self, args, grid, cur, table) -> None:
        """Put the hand-written adjoint of a taped `p2g_fluid` (Newtonian fluids, J carried) on the tape."""
        xs, vs, Cs, Js = cur
        tg = table.grad if table.requires_grad else self._dummy("table", table)
        adj_in = [*args[:6], *args[7:11], grid.grad, int(table.requires_grad)]  # args[6]: kinds, args[11]: p0
        adj_out = [xs.grad, vs.grad, Cs.grad, Js.grad, tg]

        self._record_adjoint("p2g_fluid_adjoint", self.p2g_fluid_adjoint, adj_in, adj_out)

    def _record_g2p_fluid_adjoint(self, args, outs, Js, grid_v) -> None:
        """Put the hand-written adjoint of a taped `g2p_fluid` on the tape."""
        x_out, v_out, C_out, J_out = outs
        adj_in = [*args[:6], v_out, C_out, x_out.grad, v_out.grad, C_out.grad, J_out.grad]  # args[6:]: nb, p0
        adj_out = [args[0].grad, Js.grad, grid_v.grad]

        self._record_adjoint("g2p_fluid_adjoint", self.g2p_fluid_adjoint, adj_in, adj_out)

    def _record_g2p_adjoint(self, args, outs, Ft, Fs, grid_v) -> None:
        """Put the hand-written adjoint of `g2p_stored` on the tape."""
        xs = args[0]
        x_out, v_out, C_out, _ = outs
        adj_in = [*args[:6], v_out, C_out, x_out.grad, v_out.grad, C_out.grad, Ft.grad]  # args[6]: check_f
        adj_out = [xs.grad, Fs.grad, grid_v.grad]

        self._record_adjoint("g2p_stored_adjoint", self.g2p_stored_adjoint, adj_in, adj_out)

    def _record_grid_adjoint(self, grid, grid_v, blist, nblk, dt, records, s, friction, force, torque) -> None:
        """Put the hand-written adjoint of `grid_update` on the tape (with or without colliders)."""
        if self.ncol == 0:
            kernel = self.grid_update_adjoint
            adj_in = [grid, self.res, dt, self.gravity, self.cfg.bound, self.bc, blist, self.nb, grid_v.grad]
            adj_out = [grid.grad]
        else:
            kernel = self.grid_update_collider_adjoint
            rg, fg = records.grad, friction.grad
            adj_in = [grid, self.res, self.T.float(self.dx), dt, self.gravity, self.cfg.bound, self.bc, self.ncol,
                      self.ctype, self.cparam, self.cmesh, self.csticky, records, s, friction, blist, self.nb,
                      grid_v.grad, force.grad, torque.grad, int(rg is not None), int(fg is not None)]
            adj_out = [grid.grad, rg if rg is not None else self._dummy("records", records),
                       fg if fg is not None else self._dummy("friction", friction)]

        # collider-free on a CPU: one thread per block, as the grid update itself
        per_block = self.ncol == 0 and self.device == "cpu"
        if per_block:
            kernel = self.grid_update_adjoint_blocks

        self._record_adjoint("grid_adjoint", kernel, adj_in, adj_out,
                             dim=nblk if per_block else nblk * self.block_nodes)

    def _dummy(self, key, like):
        """A zero array shaped like `like` that a kernel may be handed as an unused gradient output."""
        t = self._pool.get("dummy_" + key)
        if t is None or t.shape != like.shape:
            t = self.wp.zeros(like.shape, dtype=like.dtype, device=self.device)
            self._pool["dummy_" + key] = t
        return t

    # ---------------------------------------------------------------------------- CPU workers
    def _split(self, kernel, count: int, inputs: list, outputs: list[list], extra: tuple | list = ()) -> None:
        """Launch `kernel` over `count` items split into contiguous ranges, one per CPU worker.

        Worker w's inputs are `inputs`, the first item of its range (the kernel's `p0` or `b0`)
        and `extra`; its outputs are `outputs[w]` (one list per worker: their number is the number
        of workers). One worker: a plain launch on this thread. Several: the launches are packed
        here and run by `physim.mpm.threads.worker_pool` (the GIL is released while a kernel runs,
        so they run in parallel); this returns when all have finished.
        """
        wp = self.wp
        workers = len(outputs)
        if workers == 1 or count < workers:
            wp.launch(kernel, count, inputs=[*inputs, 0, *extra], outputs=outputs[0], device=self.device,
                      record_tape=False)
            return
        bounds = [count * w // workers for w in range(workers + 1)]
        cmds = [wp.launch(kernel, bounds[w + 1] - bounds[w], inputs=[*inputs, bounds[w], *extra], outputs=outputs[w],
                          device=self.device, record_tape=False, record_cmd=True) for w in range(workers)]
        worker_pool(self.threads).run([c.launch for c in cmds])

    def _grid_copy(self, grid, w: int):
        """Worker w's grid (the w-th block of `nodes` entries of the untaped grid buffer)."""
        if self.particle_workers == 1:
            return grid
        key = ("grid_copy", w)
        view = self._pool.get(key)
        if view is None or view.ptr != grid.ptr + w * self.nodes * grid.strides[0]:
            view = self._pool[key] = grid[w * self.nodes:(w + 1) * self.nodes]
        return view

    def _reaction_rows(self, w: int, force, torque, force_w, torque_w):
        """Where worker w of the grid update accumulates collider force and torque."""
        if w == 0 or force_w is None:
            return force, torque
        lo, hi = (w - 1) * self.ncol, w * self.ncol
        return force_w[lo:hi], torque_w[lo:hi]

    def _sum_reactions(self, force, torque, force_w, torque_w) -> None:
        """Add the collider reactions of CPU workers 1, 2, ... (rows of `force_w`, `torque_w`; None: no
        such rows) to worker 0's `force` and `torque`, in worker order."""
        if force_w is None:
            return
        k1 = self.threads - 1
        for acc, rows in ((force, force_w), (torque, torque_w)):
            a, r = self.wp.to_torch(acc), self.wp.to_torch(rows).view(k1, self.ncol, 3)
            for w in range(k1):
                a[: self.ncol] += r[w]

    def _marks(self, w: int | None = None):
        """Block flags of the next grid update (written by `mark_blocks`, or by `g2p` for the next substep):
        one row per CPU worker of the gather (`w`: worker w's row; None: all rows)."""
        marks = self._buf("marks", self.blocks * self.particle_workers, self.wp.int32)
        if w is None or self.particle_workers == 1:
            return marks
        key = ("marks_row", w)
        view = self._pool.get(key)
        if view is None:
            view = self._pool[key] = marks[w * self.blocks:(w + 1) * self.blocks]
        return view

    def _active_blocks(self, xs, inv_dx, rec: bool, marked: bool = False):
        """(block list, count) for the grid update: the touched blocks on a CPU, every block on a GPU.

        A CPU thread costs nearly the same whether its node holds mass or not (the adjoint kernel
        zeroes its locals first), so on a CPU the particles flag their stencil's base block and
        the host dilates and compacts the flags (a few thousand, read without a copy). A GPU
        would wait for the host, so it visits every block. `marked`: the flags were already
        written (by the previous substep's `g2p`); they are cleared after reading, for the next.
        """
        wp = self.wp
        marks = self._marks()
        if self.device != "cpu":
            return self.all_blocks, self.blocks
        if not marked:
            marks.zero_()
            wp.launch(self.mark_blocks, self.n, inputs=[xs, self.res, self.nb, inv_dx], outputs=[marks],
                      device=self.device, record_tape=False)
        flat = marks.numpy()
        m = flat.reshape((-1, *self.nb_shape)).any(0)
        flat[:] = 0
        for ax in range(m.ndim):  # a stencil reaches one block up along each axis
            lo = [slice(None)] * m.ndim
            hi = [slice(None)] * m.ndim
            lo[ax], hi[ax] = slice(1, None), slice(None, -1)
            m[tuple(lo)] |= m[tuple(hi)]
        idx = np.flatnonzero(m)
        lst = self._taped(self.blocks, wp.int32, grad=False, zero=False) if rec else self._buf(
            "blocks", self.blocks, wp.int32)
        lst.numpy()[: len(idx)] = idx
        return lst, len(idx)

    def _launch_p2g(self, ctx, x, v, C, F, table, tau_ext):
        """Particle-to-grid transfer only: the grid's mass and momentum (with the stress impulse of one dt)."""
        wp, T = self.wp, self.T
        grid = ctx.zeros(self.nodes, self.vecg)
        wp.launch(self.p2g, self.n, inputs=[x, v, C, F, self.body, self.vol, self.kinds, table, tau_ext, self.res,
                                            T.float(1.0 / self.dx), T.float(self.cfg.dt), 0],
                  outputs=[grid], device=ctx.device)
        return grid

    def _taped_grid(self, ctx):
        """Grid arrays of one taped substep.

        The values are the substep's own (the tape replays them); the gradient buffers are
        shared by all substeps of the operation: a function recorded before the substep's
        kernels runs, in the reverse pass, right after their adjoints and zeroes the buffers
        for the previous substep. This halves the memory of a taped substep (the grid
        dominates it) and the time spent filling fresh buffers with zeros.
        """
        wp, nodes = self.wp, self.nodes
        if self._shared_grads is None:
            self._shared_grads = (self._taped(nodes, self.vecg, grad=False), self._taped(nodes, self.vecv, grad=False))
        gg_grad, gv_grad = self._shared_grads
        tape = wp._src.context.runtime.tape

        def clear():
            gg_grad.zero_()
            gv_grad.zero_()

        if not self.hand_grid_adjoint:  # the hand-written grid adjoints leave both buffers ready
            tape.record_func(backward=clear, arrays=[])
        grid = self._taped(nodes, self.vecg, grad=False)
        grid.grad = gg_grad
        # every node's velocity is written by grid_update: no zero fill needed
        grid_v = self._taped(nodes, self.vecv, grad=False, zero=False)
        grid_v.grad = gv_grad
        return grid, grid_v

    def _fresh_particles(self, ctx, rec: bool):
        T, n = self.T, self.n
        wp, d = self.wp, self.cfg.dim
        opts = {"device": self.sim.device, "dtype": self.sim.dtype}

        def out(*shape, dtype):
            # torch.empty, not ctx.zeros: the scatter writes every entry, and torch's zero fill
            # runs on several threads, which stalls on a busy machine; Warp zeroes the gradient
            a = wp.from_torch(torch.empty(shape, **opts), dtype=dtype)
            if rec:
                a.grad = wp.from_torch(torch.empty(shape, **opts), dtype=dtype)
                a.grad.zero_()
            return a

        return out(n, d, dtype=T.vec), out(n, d, dtype=T.vec), out(n, d, d, dtype=T.mat), out(n, d, d, dtype=T.mat)

    def _particles(self, ctx, fresh: bool, tag: str, carry_j: bool = False):
        """Particle arrays (x, v, C, F, or J instead of F): fresh ones on the tape, reused buffers otherwise."""
        T, n = self.T, self.n
        if fresh:  # every entry is written by the kernel that fills them: no zero fill
            return (self._taped(n, T.vec, zero=False), self._taped(n, T.vec, zero=False),
                    self._taped(n, T.mat, zero=False), self._taped(n, T.float if carry_j else T.mat, zero=False))
        last = self._buf(tag + "J", n, T.float) if carry_j else self._buf(tag + "F", n, T.mat)
        return self._buf(tag + "x", n, T.vec), self._buf(tag + "v", n, T.vec), self._buf(tag + "C", n, T.mat), last

    def _rigid(self, ctx, outs, table, body, vol, rslot, ridx, fresh: bool, tag: str):
        wp, T = self.wp, self.T
        x, v, C, F = outs
        k, r = self.rigid_count, self.rigid_particles
        hand = fresh and self.hand_rigid

        def acc(name, dtype):
            """A per-body sum (zeroed; its gradient too on the tape): recycled, not a fresh torch allocation."""
            if fresh:
                return self._taped(k, dtype, grad=not hand)
            a = self._buf("rigid_" + name, k, dtype)
            a.zero_()
            return a

        def launch(key, kernel, dim, inputs, outputs):
            if hand:  # not on the tape: the adjoint below is hand-written
                self._replay(key, kernel, dim, inputs, outputs)
            else:
                wp.launch(kernel, dim, inputs=inputs, outputs=outputs, device=ctx.device)

        msum, mx, mv = acc("msum", T.float), acc("mx", T.vec), acc("mv", T.vec)
        s1 = [ridx, self.rbody, body, vol, table, x, v]
        launch("rigid_sums1", self.rigid_sums1, r, s1, [msum, mx, mv])
        A, L, I = acc("A", T.mat), acc("L", T.vec3), acc("I", T.mat3)
        launch("rigid_sums2", self.rigid_sums2, r, [*s1[:5], self.r0, x, v, msum, mx], [A, L, I])
        if hand:
            # the outputs share the inputs' gradient buffers: the copied particles' gradients pass through
            # without a kernel, `rigid_apply_adjoint` visits the rigid particles only
            new = tuple(self._taped(self.n, a.dtype, grad=False, zero=False, pool="rigid_out") for a in outs)
            for a, b in zip(new, outs, strict=True):
                a.grad = b.grad
        else:
            new = self._particles(ctx, fresh, tag)
        launch("rigid_apply", self.rigid_apply, self.n, [rslot, self.rbody, self.r0, x, v, C, F, msum, mx, mv, A, L, I],
               list(new))
        if hand:
            self._record_rigid_adjoint(table, body, vol, ridx, outs, (msum, mx, mv, A, L, I))
        return new

    def _record_rigid_adjoint(self, table, body, vol, ridx, outs, sums) -> None:
        """Put the hand-written adjoint of the rigid motion (`rigid_sums1`, `rigid_sums2`, `rigid_apply`) on the tape.

        Four packed launches: the bodies' frames (one SVD per body, not per particle), the adjoint of
        `rigid_apply` over the rigid particles (they sum the bodies' ∂c, ∂v_c, ∂R, ∂W; the copied
        particles' gradients need nothing, `_rigid` gave the outputs the inputs' gradient buffers), then
        the sums' adjoints over the rigid particles, which recompute the per-body gradients instead of
        launching a kernel of one thread per body.
        """
        wp, T, K, k, r = self.wp, self.T, self.rigid_k, self.rigid_count, self.rigid_particles
        msum, mx, mv, A, L, I = sums
        R, W, U, V = (self._taped(k, T.mat, grad=False, zero=False) for _ in range(4))
        sv = self._taped(k, T.vec, grad=False, zero=False)
        dc, dvc, dcen = (self._taped(k, T.vec, grad=False) for _ in range(3))
        dR, dW = self._taped(k, T.mat, grad=False), self._taped(k, T.mat, grad=False)
        x, v = outs[0], outs[1]
        gx, gv = x.grad, v.grad
        want = int(table.requires_grad)
        tg = table.grad if want else self._dummy("table", table)
        frame = ([A, L, I, msum], [R, W, U, sv, V])
        apply = ([ridx, self.rbody, self.r0, R, W, *(a.grad for a in outs)], [dc, dvc, dR, dW])
        s2 = ([ridx, self.rbody, body, vol, table, self.r0, x, v, msum, mx, L, I, U, sv, V, dR, dW, want],
              [gx, gv, dcen, tg])
        s1 = ([ridx, self.rbody, body, vol, table, x, v, msum, mx, mv, L, I, dW, dc, dvc, dcen, want], [gx, gv, tg])

        def backward():
            self._replay("rigid_frame", K.rigid_frame, k, *frame)
            self._replay("rigid_apply_adjoint", K.rigid_apply_adjoint, r, *apply)
            self._replay("rigid_sums2_adjoint", K.rigid_sums2_adjoint, r, *s2)
            self._replay("rigid_sums1_adjoint", K.rigid_sums1_adjoint, r, *s1)

        wp._src.context.runtime.tape.record_func(backward=backward, arrays=[])

    # -------------------------------------------------------------------------------------- checks
    def check(self, substep0: int) -> None:
        """Raise `SimulationDiverged` if the last operation flagged a non-finite value or an escape."""
        flags = self.flags
        if flags is None or not bool(flags.any()):
            return
        f = flags.cpu().numpy()
        s = int(np.nonzero(f.any(1))[0][0])
        if f[s, 0]:
            raise SimulationDiverged(substep0 + s + 1, "particle_x",
                                     f"is NaN or inf for {f[s, 0]} particle(s) (is dt too large for the material?)")
        raise SimulationDiverged(substep0 + s + 1, "particle_x",
                                 f"left the domain for {f[s, 1]} particle(s) (faster than the walls can stop them)")


class _Lease:
    """Tied to a tape: when the tape is freed, its recycled arrays return to the free list."""


def _release(free: defaultdict, lease: list) -> None:
    for key, a in lease:
        free[key].append(a)
    lease.clear()
