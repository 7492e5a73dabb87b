"""The untaped CPU substeps of one operation on several threads, two hand-overs per substep.

Each CPU worker owns a contiguous range of the cell-sorted particles and its own copy of the
grid (Warp's CPU atomics are plain read-modify-writes). A substep s needs every worker's
scatter before the grid update, and the grid update before any gather, but a worker's gather
of substep s − 1 and its scatter of substep s touch only its own particles and its own grid
copy: they run back to back in one task, without a hand-over between them. The operation is

    A_0:  gather of the state into cell order, flags of the touched grid blocks, scatter 0
    B_s:  grid update s (each worker the blocks its particles reach; the copies summed in order)
    A_s:  gather of substep s − 1, scatter of substep s                  (s = 1 … S − 1)
    C:    gather of substep S − 1, the state back into particle-id order

each line one phase of `physim.mpm.threads.WorkerPool` (one task per worker, a barrier at the
end): 2 S + 1 phases where one launch per phase took 3 S plus the host's serial sort gathers.
The grid update finds the touched blocks itself from the flags the gathers wrote (no host
compaction between phases), and every launch of the operation is packed once per call
(`wp.launch(..., record_cmd=True)`) and replayed per substep with only its substep index and
divergence-flag row changed. Results are bitwise the same from run to run for a thread count,
and agree with one thread up to float32 round-off (the grid's summation order).
"""

from __future__ import annotations

import numpy as np
import torch

from physim.mpm.threads import worker_pool

__all__ = ["MAX_WORKERS", "ThreadedSubsteps"]

MAX_WORKERS = 31  # the grid update tells the workers reaching a block apart by the bits of an int32


class ThreadedSubsteps:
    """The untaped multi-worker path of a `WarpBackend` (CPU, no rigid bodies, `particle_workers` > 1)."""

    def __init__(self, be):
        self.be = be
        wp = be.wp
        self.wp = wp
        self.workers = W = be.particle_workers
        n = be.n
        self.ranges = [(n * w // W, n * (w + 1) // W) for w in range(W)]
        nb = be.nb
        # columns of blocks, (i, j, ·) in 3D and (i, ·) in 2D: one thread of the grid update each
        self.cols = nb[0] * nb[1] if be.cfg.dim == 3 else nb[0]
        # block flags written by the gathers, two sets used in turn (a set is cleared row by row by
        # the worker that writes it next, once the grid update that read it is over)
        blocks = be.blocks
        self.marks = wp.zeros(2 * W * blocks, dtype=wp.int32, device=be.device)
        self.mark_sets = [self.marks[q * W * blocks:(q + 1) * W * blocks] for q in range(2)]
        self.mark_rows = [[self.marks[(q * W + w) * blocks:(q * W + w + 1) * blocks] for w in range(W)]
                          for q in range(2)]
        self._views: dict = {}
        self._flags: dict = {}

    def _view(self, arr, w: int):
        """Worker w's range of a pooled particle array (cached: the pool's arrays live as long as the backend)."""
        key = (arr.ptr, arr.dtype, w)
        view = self._views.get(key)
        if view is None:
            lo, hi = self.ranges[w]
            view = self._views[key] = arr[lo:hi]
        return view

    def _flag_rows(self, S: int):
        """Divergence counts, one row per worker and substep (torch (W, S, 2)), and their Warp views."""
        got = self._flags.get(S)
        if got is None:
            t = torch.zeros(self.workers, S, 2, dtype=torch.int32, device=self.be.sim.device)
            a = self.wp.from_torch(t, dtype=self.wp.int32)
            got = self._flags[S] = (t, [[a[w, s] for s in range(S)] for w in range(self.workers)])
        else:
            got[0].zero_()
        return got

    def run(self, ctx, x, v, C, F, table, records, friction, tau_ext):
        """`records.shape[0]` untaped substeps of the backend's operation; returns (x, v, C, F, force, torque)."""
        be, wp = self.be, self.wp
        T, cfg, n, W = be.T, be.cfg, be.n, self.workers
        dev = be.device
        S = records.shape[0]
        dt = T.float(cfg.dt)
        inv_dx = T.float(1.0 / be.dx)
        carry_j = be.carry_j
        force = ctx.zeros(max(be.ncol, 1), T.vec3)
        torque = ctx.zeros(max(be.ncol, 1), T.vec3)
        force_w = torque_w = None
        if be.ncol > 0:  # collider reactions of grid workers 1, 2, ...
            force_w = ctx.zeros((be.threads - 1) * be.ncol, T.vec3)
            torque_w = ctx.zeros((be.threads - 1) * be.ncol, T.vec3)
        flags_t, flag_rows = self._flag_rows(S)

        def pack(kernel, dim, inputs, outputs):
            return wp.launch(kernel, dim, inputs=inputs, outputs=outputs, device=dev, record_tape=False,
                             record_cmd=True)

        # cell order (an integer permutation), sorted on this thread: the gathers need all of it
        keys = be._buf("keys", 2 * n, wp.int32)
        order = be._buf("order", 2 * n, wp.int32)
        if cfg.sort_particles:
            wp.launch(be.cell_keys, n, inputs=[x, be.res, inv_dx], outputs=[keys, order], device=dev, record_tape=False)
            wp.utils.radix_sort_pairs(keys, order, n)
        else:
            order.assign(np.arange(2 * n, dtype=np.int32) % max(n, 1))
        body, vol = be._buf("body", n, wp.int32), be._buf("vol", n, T.float)
        rslot, ridx = be._buf("rslot", n, wp.int32), be._buf("ridx", max(be.rigid_particles, 1), wp.int32)
        # particle buffers used in turn: substep s reads P[(s + 1) % 2] and writes P[s % 2]
        P = [be._particles(ctx, False, f"mt{q}", carry_j) for q in range(2)]
        gathered = tau_ext.shape[0] == n  # a per-particle external stress (neural materials)
        tau_s = be._buf("tau", n, T.mat) if gathered else tau_ext
        grid = be._buf("grid", be.nodes * W, be.vecg)
        if not be._grid_clean:
            grid.zero_()
        be._grid_clean = False  # until the last grid update has cleared the copies (not if a phase fails)
        grid_v = be._buf("grid_v", be.nodes, be.vecv)
        final = be._fresh_particles(ctx, False)
        first, last, scatter, gather = [], [], [], []  # packed launches of each worker
        for w in range(W):
            lo, hi = self.ranges[w]
            ow = self._view(order, w)
            src = P[1]
            first.append([
                pack(be.gather_static, hi - lo, [ow, be.body, be.vol, be.rslot],
                     [self._view(body, w), self._view(vol, w), self._view(rslot, w), ridx]),
                pack(be.gather_j if carry_j else be.gather, hi - lo, [ow, x, v, C, F],
                     [self._view(a, w) for a in src]),
            ])
            if gathered:
                first[w].append(pack(be.gather_mat, hi - lo, [ow, tau_ext], [self._view(tau_s, w)]))
            first[w].append(pack(be.mark_blocks, hi - lo, [self._view(src[0], w), be.res, be.nb, inv_dx],
                                 [self.mark_rows[0][w]]))
            # scatter of substep s (reads P[(s + 1) % 2]) and gather of substep s (writes P[s % 2]), by parity
            grid_w = be._grid_copy(grid, w)
            scatter.append([])
            gather.append([])
            for q in range(2):
                xs, vs, Cs, Fs = P[(q + 1) % 2]
                if carry_j:
                    scatter[w].append(pack(be.p2g_fluid, hi - lo, [xs, vs, Cs, Fs, body, vol, be.kinds, table, be.res,
                                                                   inv_dx, dt, lo], [grid_w]))
                    gather[w].append(pack(be.g2p_fluid, hi - lo, [xs, Fs, grid_v, be.res, inv_dx, dt, be.nb, lo],
                                          [*P[q], flag_rows[w][0], self.mark_rows[(q + 1) % 2][w]]))
                else:
                    scatter[w].append(pack(be.p2g, hi - lo, [xs, vs, Cs, Fs, body, vol, be.kinds, table, tau_s, be.res,
                                                             inv_dx, dt, lo], [grid_w]))
                    gather[w].append(pack(be.g2p, hi - lo, [xs, Fs, body, be.kinds, table, grid_v, be.res, inv_dx, dt,
                                                            be.nb, lo],
                                          [*P[q], flag_rows[w][0], self.mark_rows[(q + 1) % 2][w]]))
            last.append(pack(be.scatter_j if carry_j else be.scatter, hi - lo,
                             [ow, *[self._view(a, w) for a in P[(S - 1) % 2]]], list(final)))
        flags_arg = [a.label for a in gather[0][0].kernel.adj.args].index("flags")
        # grid update of substep s reads the flag set s % 2; worker w updates the blocks its particles reach
        # (those reached by several workers' particles: the lowest worker)
        upd = []
        for w in range(W):
            rows = be._reaction_rows(w, force, torque, force_w, torque_w)
            upd.append([pack(be.grid_update_marked, self.cols,
                             [grid, be.res, T.float(be.dx), dt, be.gravity, cfg.bound, be.bc, be.ncol, be.ctype,
                              be.cparam, be.cmesh, be.csticky, records, 0, friction, self.mark_sets[q], W, be.nb, w],
                             [grid_v, *rows]) for q in range(2)])
        s_arg = [a.label for a in be.grid_update_marked.adj.args].index("s")

        pool = worker_pool(be.threads)

        def phase_a(s: int):
            """Gather of substep s − 1 (none for s = 0: the state is put into cell order), scatter of substep s."""
            q = s % 2

            def task(w):
                def go():
                    if s == 0:
                        self.mark_rows[0][w].zero_()
                        for c in first[w]:
                            c.launch()
                    else:
                        self.mark_rows[q][w].zero_()
                        g = gather[w][1 - q]  # the gather of substep s - 1 writes P[(s - 1) % 2], flag set s % 2
                        g.set_param_at_index(flags_arg, flag_rows[w][s - 1])
                        g.launch()
                    scatter[w][q].launch()
                return go

            return [task(w) for w in range(W)]

        def phase_b(s: int):
            def task(w):
                def go():
                    c = upd[w][s % 2]
                    c.set_param_at_index(s_arg, s)
                    c.launch()
                return go

            return [task(w) for w in range(W)]

        def phase_c():
            def task(w):
                def go():
                    g = gather[w][(S - 1) % 2]
                    g.set_param_at_index(flags_arg, flag_rows[w][S - 1])
                    g.launch()
                    last[w].launch()
                return go

            return [task(w) for w in range(W)]

        for s in range(S):
            pool.run(phase_a(s))
            pool.run(phase_b(s))
        pool.run(phase_c())
        be._grid_clean = True  # the grid updates cleared every node a scatter touched
        be.flags = flags_t.sum(0, dtype=torch.int32)
        be._sum_reactions(force, torque, force_w, torque_w)
        return (*final, force, torque)
