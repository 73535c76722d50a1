"""Numba kernels for the element-wise activations, on flat C-contiguous arrays."""

import numpy as np
from numba import prange

from kernels._jit import kernel


@kernel(size_factor=4)
def relu_forward(x, y):
    zero = y.dtype.type(0)
    for i in prange(x.size):
        y[i] = zero if x[i] <= zero else x[i]


@kernel(size_factor=4)
def relu_backward(dy, y, dx):
    zero = dx.dtype.type(0)
    for i in prange(dy.size):
        dx[i] = zero if y[i] <= zero else dy[i]


@kernel
def sigmoid_forward(x, y):
    one = y.dtype.type(1)
    for i in prange(x.size):
        e = np.exp(-abs(x[i]))
        y[i] = one / (one + e) if x[i] >= 0 else e / (one + e)


@kernel
def sigmoid_backward(dy, y, dx):
    one = dx.dtype.type(1)
    for i in prange(dy.size):
        dx[i] = dy[i] * y[i] * (one - y[i])
