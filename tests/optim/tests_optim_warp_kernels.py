"""A one-kernel Warp op for the Hessian-refusal test (Warp kernels must live in a source file)."""

from __future__ import annotations

import warp as wp

from physim.autodiff import WarpOp
from physim.runtime import init_warp


@wp.kernel
def _scale_kernel(x: wp.array(dtype=wp.float64), w: wp.array(dtype=wp.float64), y: wp.array(dtype=wp.float64)):
    i = wp.tid()
    y[i] = w[0] * x[i]


def warp_scale_op() -> WarpOp:
    """y = w · x elementwise, through Warp."""
    init_warp()

    def launch(ctx, x, w):
        y = ctx.zeros(x.shape[0], wp.float64)
        wp.launch(_scale_kernel, dim=x.shape[0], inputs=[x, w], outputs=[y], device=ctx.device)
        return y

    return WarpOp(launch, input_dtypes=(wp.float64, wp.float64), name="scale")
