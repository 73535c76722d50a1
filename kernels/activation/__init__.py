"""ReLU and sigmoid: forward and backward on arrays of any shape.

Backward functions take the forward *output* ``y`` (what the layer caches).
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.activation import cpu

ANY = "(N, ...)"


def _unary(op: str, body, x: np.ndarray, parallel: bool) -> np.ndarray:
    x = _checks.float_array(op, "x", x, ANY)
    if impl := _checks.cuda_impl(op, "activation", x=x):
        return getattr(impl, op)(x)
    y = np.empty_like(x)
    body(x.reshape(-1), y.reshape(-1), parallel=parallel)
    return y


def _binary(op: str, body, dy: np.ndarray, y: np.ndarray, parallel: bool) -> np.ndarray:
    dy = _checks.float_array(op, "dy", dy, ANY)
    y = _checks.float_array(op, "y", y, ANY)
    _checks.same_dtype(op, dy=dy, y=y)
    _checks.shape_is(op, "dy", dy, y.shape, "y.shape")
    if impl := _checks.cuda_impl(op, "activation", dy=dy, y=y):
        return getattr(impl, op)(dy, y)
    dx = np.empty_like(dy)
    body(dy.reshape(-1), y.reshape(-1), dx.reshape(-1), parallel=parallel)
    return dx


def relu_forward(x: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """ReLU, ``y = max(x, 0)``.

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    return _unary("relu_forward", cpu.relu_forward, x, parallel)


def relu_backward(dy: np.ndarray, y: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """Gradient of ReLU: ``dx = dy * (y > 0)``.

    Parameters
    ----------
    dy : ndarray, upstream gradient, same shape and dtype as ``y``
    y : ndarray, the forward output
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``dx``, same shape and dtype as ``dy``.
    """
    return _binary("relu_backward", cpu.relu_backward, dy, y, parallel)


def sigmoid_forward(x: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """Logistic sigmoid, stable for large ``|x|`` (no overflow).

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray, same shape and dtype as ``x``, values in [0, 1].
    """
    return _unary("sigmoid_forward", cpu.sigmoid_forward, x, parallel)


def sigmoid_backward(dy: np.ndarray, y: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """Gradient of the sigmoid: ``dx = dy * y * (1 - y)``.

    Parameters
    ----------
    dy : ndarray, upstream gradient, same shape and dtype as ``y``
    y : ndarray, the forward output
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``dx``, same shape and dtype as ``dy``.
    """
    return _binary("sigmoid_backward", cpu.sigmoid_backward, dy, y, parallel)
