"""numba-cuda kernels for the book's Affine layer, ``Y = X @ W + B``, on device arrays.

Each product is a tiled shared-memory matrix product (``kernels._cuda.tiled_product``);
``dw = x.T @ dy`` reduces over the batch split-K (partial products summed in order), ``db``
is a per-column tree reduction.
"""

from __future__ import annotations

from kernels import _cuda

_NO_GEOM = (0,)  # the plain-matrix loaders need no geometry
_forward = _cuda.tiled_product(_cuda.load_rows, _cuda.load_rows, _cuda.store_bias)
_input_grad = _cuda.tiled_product(_cuda.load_rows, _cuda.load_cols, _cuda.store_plain)
_weight_grad = _cuda.tiled_product(_cuda.load_cols, _cuda.load_rows, _cuda.store_split)


def _rows(x):
    """View ``x`` (N, d1, ...) as (N, D)."""
    return x.reshape(x.shape[0], x.size // x.shape[0])


def affine_forward(x, w, b):
    """``y = x.reshape(N, D) @ w + b`` on the device.

    Parameters
    ----------
    x : device array (N, d1, ...), float32 or float64; flattened to (N, D)
    w : device array (D, M), x's dtype
    b : device array (M,), x's dtype

    Returns
    -------
    device array ``y`` (N, M), x's dtype.
    """
    x2 = _rows(x)
    n, (d, m) = x2.shape[0], w.shape
    y = _cuda.empty((n, m), x.dtype)
    _forward(x2, w, y, b, _NO_GEOM, (n, m, d))
    return y


def affine_backward(dy, x, w):
    """Gradients of ``y = x.reshape(N, D) @ w + b`` on the device.

    Parameters
    ----------
    dy : device array (N, M), float32 or float64
    x : device array (N, d1, ...), the forward input, dy's dtype
    w : device array (D, M), dy's dtype

    Returns
    -------
    dx : device array, x's shape, ``dy @ w.T``
    dw : device array (D, M), ``x.reshape(N, D).T @ dy``
    db : device array (M,), ``dy.sum(axis=0)``
    """
    x2 = _rows(x)
    n, (d, m) = x2.shape[0], w.shape
    dx = _cuda.empty((n, d), dy.dtype)
    _input_grad(dy, w, dx, dx, _NO_GEOM, (n, d, m))
    dw = _cuda.split_product(_weight_grad, x2, dy, _NO_GEOM, (d, m, n), dy.dtype)
    db = _cuda.channel_sum(dy.reshape(n, m, 1))
    return dx.reshape(*x.shape), dw, db
