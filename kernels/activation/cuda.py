"""numba-cuda kernels for ReLU and sigmoid (element-wise, grid-stride), on device arrays.

Backward functions take the forward *output* ``y``, as the CPU kernels do.
"""

from __future__ import annotations

import math

from numba import cuda

from kernels import _cuda


@cuda.jit
def _relu_forward(x, y):
    zero = y.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = zero if x[i] <= zero else x[i]


@cuda.jit
def _relu_backward(dy, y, dx):
    zero = dx.dtype.type(0)
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = zero if y[i] <= zero else dy[i]


@cuda.jit
def _sigmoid_forward(x, y):
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        e = math.exp(-abs(x[i]))
        y[i] = one / (one + e) if x[i] >= zero else e / (one + e)


@cuda.jit
def _sigmoid_backward(dy, y, dx):
    one = dx.dtype.type(1)
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * y[i] * (one - y[i])


def _map(body, *arrays):
    """Run an element-wise kernel on flat views; return the new output (shape of arrays[0])."""
    out = _cuda.empty(arrays[0].shape, arrays[0].dtype)
    body[_cuda.grid(out.size)](*[_cuda.flat(a) for a in (*arrays, out)])
    return out


def relu_forward(x):
    """ReLU ``y = max(x, 0)`` on the device; NaN propagates.

    Parameters
    ----------
    x : device array, float32 or float64, any shape

    Returns
    -------
    device array, same shape and dtype as ``x``.
    """
    return _map(_relu_forward, x)


def relu_backward(dy, y):
    """Gradient of ReLU, ``dx = dy * (y > 0)``, on the device.

    Parameters
    ----------
    dy : device array, upstream gradient, same shape and dtype as ``y``
    y : device array, the forward output

    Returns
    -------
    device array ``dx``, same shape and dtype as ``dy``.
    """
    return _map(_relu_backward, dy, y)


def sigmoid_forward(x):
    """Logistic sigmoid on the device, stable for large ``|x|``.

    Parameters
    ----------
    x : device array, float32 or float64, any shape

    Returns
    -------
    device array, same shape and dtype as ``x``, values in [0, 1].
    """
    return _map(_sigmoid_forward, x)


def sigmoid_backward(dy, y):
    """Gradient of the sigmoid, ``dx = dy * y * (1 - y)``, on the device.

    Parameters
    ----------
    dy : device array, upstream gradient, same shape and dtype as ``y``
    y : device array, the forward output

    Returns
    -------
    device array ``dx``, same shape and dtype as ``dy``.
    """
    return _map(_sigmoid_backward, dy, y)
