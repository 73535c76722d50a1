"""Numba kernels for the affine layer on C-contiguous 2-d arrays.

The matrix products are ``np.dot`` (SciPy's BLAS, threaded by BLAS itself in both
variants; never called from inside ``prange``, so BLAS threads are not nested in
Numba's). ``prange`` splits the bias add over rows and the bias gradient over columns,
so each thread owns its outputs.
"""

import numpy as np
from numba import prange

from kernels._jit import kernel


@kernel
def affine_forward(x, w, b, y):
    np.dot(x, w, y)
    N, M = y.shape
    for i in prange(N):
        for j in range(M):
            y[i, j] += b[j]


@kernel
def affine_backward(dy, x, w, dx, dw, db):
    np.dot(dy, w.T, dx)
    np.dot(x.T, dy, dw)
    N, M = dy.shape
    for j in prange(M):
        total = db.dtype.type(0)
        for i in range(N):
            total += dy[i, j]
        db[j] = total
