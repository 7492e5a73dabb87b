"""The mass-spring chain on Warp."""

from __future__ import annotations

from physim.autodiff import WarpOp
from physim.runtime import init_warp
from physim.springs.simulator import ChainSimulator

__all__ = ["WarpChain"]


class WarpChain(ChainSimulator):
    """Mass-spring chain whose substeps are Warp kernels, differentiated with ``wp.Tape``.

    Example::

        sim = WarpChain(ChainConfig(particle_count=8))
        sim.params["stiffness"].requires_grad_(True)
        out = sim.rollout(sim.reset(), forces)          # forces: (T, 8, 2) [N]
        out.state.x[-1, 1].backward()                    # d(end height)/d(stiffness, forces)
    """

    backend = "warp"

    def __init__(self, cfg=None, *, device=None):
        super().__init__(cfg, device=device)
        wp = init_warp()
        from physim.springs import warp_kernels as k

        cfg = self.cfg
        n = cfg.particle_count

        def one_control_step(ctx, x, v, f_ext, stiffness, damping, free):
            # Fresh arrays every substep: the tape replays adjoints, so nothing read may be overwritten.
            for _ in range(cfg.substeps):
                f = ctx.zeros(n, wp.vec2d)
                wp.launch(k.external_forces, n, inputs=[v, f_ext, cfg.mass, cfg.gravity, cfg.drag],
                          outputs=[f], device=ctx.device)
                wp.launch(k.spring_forces, n - 1, inputs=[x, v, stiffness, damping, cfg.rest_length],
                          outputs=[f], device=ctx.device)
                x_new, v_new = ctx.zeros(n, wp.vec2d), ctx.zeros(n, wp.vec2d)
                wp.launch(k.integrate, n, inputs=[x, v, f, free, 1.0 / cfg.mass, cfg.dt],
                          outputs=[x_new, v_new], device=ctx.device)
                x, v = x_new, v_new
            return x, v

        self._op = WarpOp(
            one_control_step,
            (wp.vec2d, wp.vec2d, wp.vec2d, wp.float64, wp.float64, wp.float64),
            name="WarpChain.step",
        )

    def _advance(self, x, v, f_ext, stiffness, damping):
        return self._op(x, v, f_ext, stiffness, damping, self._free)
