"""Numba kernels for the fused inference epilogues, on stacks of planes.

``relu_maxpool2x2_forward`` finishes a convolution whose ReLU is followed by 2x2 max
pooling in one pass over the convolution's output: it reads each value once and writes a
quarter of them, where the separate layers read and write the whole output for the ReLU,
then read it again and write the pooled values and their indices. The outer ``prange``
runs over planes, so each thread owns whole output planes.
"""

from numba import prange

from kernels._jit import helper, kernel


@helper
def _max_nan(a, b):
    """The larger of ``a`` and ``b``, NaN if either is NaN (max pooling's rule)."""
    return a if (a >= b or a != a) else b


@kernel
def relu_maxpool2x2_forward(x, y):
    """``y (P, OH, OW) = relu(maxpool2x2(x (P, H, W)))``, ``OH = H // 2``, ``OW = W // 2``."""
    zero = y.dtype.type(0)
    P, OH, OW = y.shape
    for p in prange(P):
        for oh in range(OH):
            top, bottom = x[p, 2 * oh], x[p, 2 * oh + 1]
            out = y[p, oh]
            for ow in range(OW):
                w = 2 * ow
                m = _max_nan(_max_nan(top[w], top[w + 1]), _max_nan(bottom[w], bottom[w + 1]))
                out[ow] = zero if m <= zero else m
