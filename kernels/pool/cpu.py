"""Numba kernels for 2-d max and average pooling.

Arrays arrive as stacks of planes: ``x`` (P, H, W) with ``P = N * C``, outputs (P, OH, OW).
The outer ``prange`` runs over planes, so each thread owns whole output planes and the
backward scatter-adds never race. Windows are clamped to the unpadded input, so padding
is never read (it is -inf for max and zero for average).

``maxpool2x2_forward`` is the common 2x2, stride 2, unpadded case with the window unrolled:
the general kernel's loops, whose trip counts are only known at run time, made it 7x slower
there (6 ms against 0.8 ms for the VGG net's first pool at batch 100, 2 threads).
"""

import numpy as np
from numba import prange

from kernels._jit import helper, kernel


@helper
def _span(o, k, s, p, size):
    """Clamped input range ``[start, stop)`` of window ``o`` along one axis."""
    start = o * s - p
    return max(start, 0), min(start + k, size)


@helper
def _wins(v, best):
    """Whether ``v`` replaces ``best`` as a window's maximum: larger, or NaN (a NaN wins)."""
    return v > best or np.isnan(v)


@kernel
def maxpool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    P, H, W = x.shape
    _, OH, OW = y.shape
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = _span(oh, kh, sh, ph, H)
            for ow in range(OW):
                w0, w1 = _span(ow, kw, sw, pw, W)
                best = x[p, h0, w0]
                at = h0 * W + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[p, h, w]
                        if _wins(v, best):
                            best = v
                            at = h * W + w
                y[p, oh, ow] = best
                indices[p, oh, ow] = at


@kernel
def maxpool2x2_forward(x, y, indices):
    _, _, W = x.shape
    P, OH, OW = y.shape
    for p in prange(P):
        for oh in range(OH):
            h = 2 * oh
            for ow in range(OW):
                w = 2 * ow
                best = x[p, h, w]
                at = h * W + w
                for i, j in ((0, 1), (1, 0), (1, 1)):
                    v = x[p, h + i, w + j]
                    if _wins(v, best):
                        best = v
                        at = (h + i) * W + w + j
                y[p, oh, ow] = best
                indices[p, oh, ow] = at


@kernel
def maxpool2d_backward(dy, indices, dx):
    P, L = dy.shape
    zero = dx.dtype.type(0)
    for p in prange(P):
        dx[p, :] = zero
        for i in range(L):
            dx[p, indices[p, i]] += dy[p, i]


@kernel
def avgpool2d_forward(x, y, kh, kw, sh, sw, ph, pw):
    P, H, W = x.shape
    _, OH, OW = y.shape
    count = y.dtype.type(kh * kw)
    for p in prange(P):
        for oh in range(OH):
            h0, h1 = _span(oh, kh, sh, ph, H)
            for ow in range(OW):
                w0, w1 = _span(ow, kw, sw, pw, W)
                total = y.dtype.type(0)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                y[p, oh, ow] = total / count


@kernel
def avgpool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw):
    P, H, W = dx.shape
    _, OH, OW = dy.shape
    count = dx.dtype.type(kh * kw)
    zero = dx.dtype.type(0)
    for p in prange(P):
        dx[p] = zero
        for oh in range(OH):
            h0, h1 = _span(oh, kh, sh, ph, H)
            for ow in range(OW):
                w0, w1 = _span(ow, kw, sw, pw, W)
                g = dy[p, oh, ow] / count
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        dx[p, h, w] += g
