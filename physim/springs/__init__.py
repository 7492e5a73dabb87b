"""Mass-spring chains on Warp and on Taichi: physim's reference differentiable simulators.

They exist to prove the autodiff bridge (gradients against finite differences,
checkpointing, memory) and to serve as the smallest example of the simulator
contract. Importing this package loads neither backend; constructing a simulator does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from physim.springs.config import ChainConfig, ChainState

__all__ = ["ChainConfig", "ChainState", "TaichiChain", "WarpChain"]

if TYPE_CHECKING:  # pragma: no cover
    from physim.springs.taichi_chain import TaichiChain
    from physim.springs.warp_chain import WarpChain


def __getattr__(name: str):
    if name == "WarpChain":
        from physim.springs.warp_chain import WarpChain

        return WarpChain
    if name == "TaichiChain":
        from physim.springs.taichi_chain import TaichiChain

        return TaichiChain
    raise AttributeError(f"module 'physim.springs' has no attribute {name!r}")
