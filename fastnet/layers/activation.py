"""ReLU and Sigmoid layers (book chapter 5.5)."""

from __future__ import annotations

import numpy as np

from fastnet.layers._base import cached, kernel_table
from fastnet.module import Module
from kernels.activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward
from kernels.activation.reference import (
    relu_backward_ref,
    relu_forward_ref,
    sigmoid_backward_ref,
    sigmoid_forward_ref,
)


class _Activation(Module):
    """An element-wise activation: any shape -> same shape; backward uses the cached output."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape -> same shape."""
        self._y = self.ops.forward(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dx`` from ``dy`` and the cached output ``y`` (the formula: the class docstring)."""
        return self.ops.backward(dy, cached(self, "_y"))


class ReLU(_Activation):
    """``y = max(x, 0)`` element-wise; backward ``dx = dy * (y > 0)`` uses the cached output."""

    KERNELS = kernel_table(
        fast=(relu_forward, relu_backward),
        reference=(relu_forward_ref, relu_backward_ref),
    )


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))`` element-wise, without overflow for large ``|x|``; backward
    ``dx = dy * y * (1 - y)`` uses the cached output."""

    KERNELS = kernel_table(
        fast=(sigmoid_forward, sigmoid_backward),
        reference=(sigmoid_forward_ref, sigmoid_backward_ref),
    )
