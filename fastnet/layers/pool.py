"""MaxPool2d and AvgPool2d (book chapter 7.5), PyTorch's interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnet.layers._base import cached, kernel_table
from fastnet.module import Module
from kernels import _checks
from kernels.pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from kernels.pool.reference import (
    avgpool2d_backward_ref,
    avgpool2d_forward_ref,
    maxpool2d_backward_ref,
    maxpool2d_forward_ref,
)


class _Pool2d(Module):
    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size = _checks.int_pair(owner, "kernel_size", kernel_size, 1)
        self.stride = (
            self.kernel_size if stride is None else _checks.int_pair(owner, "stride", stride, 1)
        )
        self.padding = _checks.int_pair(owner, "padding", padding, 0)
        self._cache: Any = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling over NCHW input; ties go to the first index; padding is -inf.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel size (as in PyTorch).
    """

    KERNELS = kernel_table(
        fast=(maxpool2d_forward, maxpool2d_backward),
        reference=(maxpool2d_forward_ref, maxpool2d_backward_ref),
    )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, OH, OW)."""
        y, indices = self.ops.forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = (indices, x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, C, OH, OW) -> (N, C, H, W)."""
        indices, x_shape = cached(self, "_cache")
        return self.ops.backward(dy, indices, x_shape)


class AvgPool2d(_Pool2d):
    """Average pooling over NCHW input; zero padding counts in the divisor (PyTorch's default).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel size (as in PyTorch).
    """

    KERNELS = kernel_table(
        fast=(avgpool2d_forward, avgpool2d_backward),
        reference=(avgpool2d_forward_ref, avgpool2d_backward_ref),
    )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, OH, OW)."""
        y = self.ops.forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = x.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, C, OH, OW) -> (N, C, H, W)."""
        x_shape = cached(self, "_cache")
        return self.ops.backward(dy, x_shape, self.kernel_size, self.stride, self.padding)
