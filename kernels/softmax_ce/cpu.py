"""Numba kernels for softmax and softmax cross-entropy; one row per iteration of prange."""

import numpy as np
from numba import prange

from kernels._jit import helper, kernel


@helper
def _softmax_row(x, p):
    """Write the softmax of the row ``x`` into ``p``; return the row max and the sum of exps."""
    m = x[0]
    for j in range(1, x.size):
        if x[j] > m:
            m = x[j]
    s = p.dtype.type(0)
    for j in range(x.size):
        e = np.exp(x[j] - m)
        p[j] = e
        s += e
    for j in range(x.size):
        p[j] = p[j] / s
    return m, s


@kernel
def softmax_forward(x, p):
    for i in prange(x.shape[0]):
        _softmax_row(x[i], p[i])


@kernel
def softmax_ce_forward(x, labels, p, row_loss):
    for i in prange(x.shape[0]):
        m, s = _softmax_row(x[i], p[i])
        row_loss[i] = np.log(s) - (x[i, labels[i]] - m)


@kernel
def softmax_ce_backward(p, labels, scale, dx):
    one = dx.dtype.type(1)
    for i in prange(p.shape[0]):
        for j in range(p.shape[1]):
            dx[i, j] = p[i, j] * scale
        dx[i, labels[i]] = (p[i, labels[i]] - one) * scale
