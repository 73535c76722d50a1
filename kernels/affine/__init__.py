"""The book's Affine layer, ``Y = X @ W + B``: forward and backward.

The layout is the book's, not PyTorch's ``Linear``: ``W`` is (in, out) = (D, M), so
the forward is one product without a transpose. Inputs of any ``ndim >= 2`` are
flattened to (N, D), as the book's Affine does after a convolution.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.affine import cpu

X_LAYOUT = "(N, d1, ...)"


def _operands(op: str, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``x`` (N, d1, ...) and ``w`` (D, M); return ``x`` as (N, D) and ``w``."""
    x = _checks.float_array(op, "x", x, X_LAYOUT)
    w = _checks.float_array(op, "w", w, "(D, M)")
    x2 = x.reshape(x.shape[0], -1)
    _checks.shape_is(op, "w", w, (x2.shape[1], w.shape[1]), "(D, M) with D = x[0].size")
    return x2, w


def affine_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, *, parallel: bool = True
) -> np.ndarray:
    """``y = x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    x : ndarray (N, d1, ...), float32 or float64; flattened to (N, D), D = d1 * ...
    w : ndarray (D, M), x's dtype
    b : ndarray (M,), x's dtype
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``y`` (N, M), x's dtype.
    """
    op = "affine_forward"
    x2, w = _operands(op, x, w)
    b = _checks.float_array(op, "b", b, "(M,)")
    _checks.same_dtype(op, x=x2, w=w, b=b)
    _checks.shape_is(op, "b", b, w.shape[1:], "(M,) with M = w.shape[1]")
    if impl := _checks.cuda_impl(op, "affine", x=x, w=w, b=b):
        return impl.affine_forward(x, w, b)
    y = np.empty((x2.shape[0], w.shape[1]), dtype=x2.dtype)
    cpu.affine_forward(x2, w, b, y, parallel=parallel)
    return y


def affine_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, parallel: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``y = x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    dy : ndarray (N, M), float32 or float64
    x : ndarray (N, d1, ...), the forward input, dy's dtype
    w : ndarray (D, M), dy's dtype
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    dx : ndarray, x's shape, ``dy @ w.T``
    dw : ndarray (D, M), ``x.reshape(N, D).T @ dy``
    db : ndarray (M,), ``dy.sum(axis=0)``
    """
    op = "affine_backward"
    x2, w = _operands(op, x, w)
    dy = _checks.float_array(op, "dy", dy, "(N, M)")
    _checks.same_dtype(op, dy=dy, x=x2, w=w)
    _checks.shape_is(op, "dy", dy, (x2.shape[0], w.shape[1]), "(N, M) = (x.shape[0], w.shape[1])")
    if impl := _checks.cuda_impl(op, "affine", dy=dy, x=x, w=w):
        return impl.affine_backward(dy, x, w)
    dx = np.empty(x2.shape, dtype=dy.dtype)
    dw = np.empty(w.shape, dtype=dy.dtype)
    db = np.empty(w.shape[1], dtype=dy.dtype)
    cpu.affine_backward(dy, x2, w, dx, dw, db, parallel=parallel)
    return dx.reshape(x.shape), dw, db
