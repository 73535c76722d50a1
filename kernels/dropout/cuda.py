"""numba-cuda kernel for inverted dropout (PyTorch semantics), on device arrays.

The mask is drawn on the host from the caller's ``numpy.random.Generator`` exactly as the
CPU version draws it (same seed, same mask), then uploaded; forward and backward are the
same masked scale on the device.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from kernels import _cuda


@cuda.jit
def _masked_scale(x, mask, scale, y):
    zero = y.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = x[i] * (scale if mask[i] else zero)


def _scale(p: float, dtype) -> np.generic:
    """``1 / (1 - p)`` in ``dtype``; 0 when ``p == 1``."""
    return np.dtype(dtype).type(0 if float(p) == 1 else 1 / (1 - float(p)))


def _apply(x, mask, p: float):
    y = _cuda.empty(x.shape, x.dtype)
    launch = _cuda.grid(x.size)
    _masked_scale[launch](_cuda.flat(x), _cuda.flat(mask), _scale(p, x.dtype), _cuda.flat(y))
    return y


def dropout_forward(x, p, rng):
    """Zero each element with probability ``p``, scale the kept ones by ``1 / (1 - p)``.

    Parameters
    ----------
    x : device array, float32 or float64, any shape
    p : float in [0, 1]
    rng : numpy.random.Generator
        Source of the mask, drawn on the host: ``rng.random(x.shape, dtype=x.dtype) >= p``.

    Returns
    -------
    y : device array, x's shape and dtype
    mask : device array of bool, x's shape; True where kept.
    """
    mask = _cuda.to_device(rng.random(x.shape, dtype=x.dtype) >= p)
    return _apply(x, mask, p), mask


def dropout_backward(dy, mask, p):
    """Gradient of dropout, ``dx = dy * mask / (1 - p)`` (zeros when ``p == 1``).

    Parameters
    ----------
    dy : device array, float32 or float64, upstream gradient, mask's shape
    mask : device array of bool, from :func:`dropout_forward`
    p : float in [0, 1], the forward's drop probability

    Returns
    -------
    device array ``dx``, dy's shape and dtype.
    """
    return _apply(dy, mask, p)
