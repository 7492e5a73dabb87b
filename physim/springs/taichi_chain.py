"""The mass-spring chain on Taichi."""

from __future__ import annotations

from physim.autodiff import TaichiOp
from physim.runtime import init_taichi
from physim.springs.simulator import ChainSimulator

__all__ = ["TaichiChain"]


class TaichiChain(ChainSimulator):
    """Mass-spring chain whose substeps are Taichi kernels, differentiated with Taichi's autodiff.

    Same physics and API as `WarpChain`; trajectories of the two agree to round-off.
    """

    backend = "taichi"

    def __init__(self, cfg=None, *, device=None):
        super().__init__(cfg, device=device)
        init_taichi()
        from physim.springs.taichi_kernels import ChainFields

        cfg = self.cfg
        fields = ChainFields(cfg.particle_count, cfg.substeps, self._free.cpu().numpy())
        self._fields = fields

        def one_control_step(run):
            run(fields.load)
            for s in range(cfg.substeps):
                run(fields.external_forces, s, cfg.mass, cfg.gravity, cfg.drag)
                run(fields.spring_forces, s, cfg.rest_length)
                run(fields.integrate, s, 1.0 / cfg.mass, cfg.dt)
            run(fields.store)

        f = fields
        self._op = TaichiOp(
            inputs=(f.x_in, f.v_in, f.f_ext, f.stiffness, f.damping),
            outputs=(f.x_out, f.v_out),
            program=one_control_step,
            grad_fields=(f.x_in, f.v_in, f.f_ext, f.stiffness, f.damping, f.x, f.v, f.f, f.x_out, f.v_out),
            name="TaichiChain.step",
        )

    def _advance(self, x, v, f_ext, stiffness, damping):
        return self._op(x, v, f_ext, stiffness, damping)
