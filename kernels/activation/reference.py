"""NumPy references for the element-wise activations: the specification."""

import numpy as np


def relu_forward_ref(x: np.ndarray) -> np.ndarray:
    """``y = max(x, 0)``; NaN propagates as in PyTorch."""
    return np.where(x <= 0, np.zeros_like(x), x)


def relu_backward_ref(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy`` where the output is positive, else 0 (PyTorch's threshold_backward)."""
    return np.where(y <= 0, np.zeros_like(dy), dy)


def sigmoid_forward_ref(x: np.ndarray) -> np.ndarray:
    """``y = 1 / (1 + exp(-x))`` evaluated without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_backward_ref(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy * y * (1 - y)`` from the forward output ``y``."""
    return dy * y * (1 - y)
