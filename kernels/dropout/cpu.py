"""Numba kernel for dropout on flat C-contiguous arrays.

Forward (``y = x * mask * scale``) and backward (``dx = dy * mask * scale``) are the
same operation, so both wrappers call the one kernel.
"""

from numba import prange

from kernels._jit import kernel


@kernel
def masked_scale(x, mask, scale, y):
    zero = y.dtype.type(0)
    for i in prange(x.size):
        y[i] = x[i] * (scale if mask[i] else zero)
