"""Copies between torch tensors and Taichi ndarrays, and the field-like adapter `TaichiOp` drives.

The gas grid keeps its data in Taichi ndarrays rather than fields: a kernel taking
ndarray arguments is compiled once per element type and rank and then serves every
grid size and every simulator instance (a kernel on fields is compiled again for each
new set of fields), and Taichi's offline cache finds it again in the next process.
`TaichiOp` moves torch tensors in and out through ``from_torch``/``to_torch`` and
gradients through ``.grad``; `Port` gives an ndarray that interface. The copies are
Taichi kernels that read or write the torch tensor in place (device to device on a GPU).
"""

import taichi as ti
import torch

_COPIES: dict = {}


def copy_kernel(n: int, real):
    """The kernel ``copy(src, dst)`` for ndarrays of `real` scalars (n = 0) or n-vectors."""
    key = (n, real)
    if key not in _COPIES:
        elem = real if n == 0 else ti.types.vector(n, real)

        @ti.kernel
        def copy(src: ti.types.ndarray(dtype=elem), dst: ti.types.ndarray(dtype=elem)):
            for I in ti.grouped(dst):
                dst[I] = src[I]

        _COPIES[key] = copy
    return _COPIES[key]


class Port:
    """A Taichi ndarray seen as a field by `TaichiOp`: torch shape, ``from_torch``, ``to_torch``, ``grad``.

    Args:
        arr: The ndarray (scalar or vector elements).
        n: Vector length of its elements, 0 for scalars (then the torch shape is the
            ndarray's; otherwise it gains a trailing axis of length n).
        real: Taichi float type of the elements.
        torch_dtype: The matching torch dtype.
    """

    def __init__(self, arr, n: int, real, torch_dtype: torch.dtype):
        self.arr = arr
        self.shape = tuple(arr.shape) + ((n,) if n else ())
        self._n, self._real, self._torch_dtype = n, real, torch_dtype

    def from_torch(self, t: torch.Tensor) -> None:
        copy_kernel(self._n, self._real)(t.to(self._torch_dtype).contiguous(), self.arr)

    def to_torch(self, device=None) -> torch.Tensor:
        out = torch.empty(self.shape, dtype=self._torch_dtype, device=device)
        copy_kernel(self._n, self._real)(self.arr, out)
        if out.device.type == "cuda":
            ti.sync()
        return out

    def fill(self, value) -> None:
        self.arr.fill(value)

    @property
    def grad(self) -> "Port":
        return Port(self.arr.grad, self._n, self._real, self._torch_dtype)
