"""NumPy references for inverted dropout (PyTorch semantics): the specification."""

import numpy as np


def _scale(p: float, dtype: np.dtype) -> np.generic:
    """``1 / (1 - p)`` in ``dtype``; 0 when ``p == 1`` (everything dropped)."""
    return np.dtype(dtype).type(0 if p == 1 else 1 / (1 - p))


def dropout_forward_ref(
    x: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y, mask)``: ``mask = rng.random(x.shape) >= p``, ``y = x * mask / (1 - p)``."""
    mask = rng.random(x.shape, dtype=x.dtype) >= p
    return x * mask.astype(x.dtype) * _scale(p, x.dtype), mask


def dropout_backward_ref(dy: np.ndarray, mask: np.ndarray, p: float) -> np.ndarray:
    """``dx = dy * mask / (1 - p)``."""
    return dy * mask.astype(dy.dtype) * _scale(p, dy.dtype)
