"""NumPy reference for the book's Affine layer, ``Y = X @ W + B``: the specification."""

import numpy as np


def affine_forward_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y = x.reshape(N, D) @ w + b`` for ``x`` (N, ...), ``w`` (D, M), ``b`` (M,)."""
    return x.reshape(x.shape[0], -1) @ w + b


def affine_backward_ref(dy: np.ndarray, x: np.ndarray, w: np.ndarray):
    """Return ``(dx, dw, db)``: ``dy @ w.T`` in x's shape, ``x.T @ dy``, ``dy`` summed over N."""
    x2 = x.reshape(x.shape[0], -1)
    return (dy @ w.T).reshape(x.shape), x2.T @ dy, dy.sum(axis=0)
