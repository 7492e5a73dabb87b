"""GIOROM: a reduced-order neural operator stepping a sparse particle graph, with a
discretisation-agnostic decoder evaluating the dense field at any query point.

    from physim.operators.giorom import GIOROM
    model = GIOROM(dim=2, radius=0.06, sparsity=8, bounds=[[0, 0], [1, 1]])
    dense = model.rollout_dense(history, particle_type, steps=100)   # (steps, count, dim)

See docs/giorom.md.
"""

from .decoder import DecoderPlan, KernelIntegralDecoder
from .kernel_integral import KernelIntegral
from .latent import LatentTransformer
from .model import GIOROM

__all__ = ["GIOROM", "DecoderPlan", "KernelIntegral", "KernelIntegralDecoder", "LatentTransformer"]
