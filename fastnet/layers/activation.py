"""ReLU and Sigmoid layers (book chapter 5.5)."""

from __future__ import annotations

import numpy as np

from fastnet.layers._base import cached
from fastnet.module import Module
from kernels.activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward


class ReLU(Module):
    """``y = max(x, 0)`` element-wise; backward uses the cached output."""

    def __init__(self) -> None:
        super().__init__()
        self._y = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape -> same shape."""
        self._y = relu_forward(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dx = dy * (y > 0)``."""
        return relu_backward(dy, cached(self, "_y"))


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` element-wise, without overflow for large ``|x|``."""

    def __init__(self) -> None:
        super().__init__()
        self._y = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape -> same shape."""
        self._y = sigmoid_forward(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dx = dy * y * (1 - y)``."""
        return sigmoid_backward(dy, cached(self, "_y"))
