"""numba-cuda kernels for 2-d max and average pooling (PyTorch semantics), on device arrays.

Arrays are viewed as stacks of planes, ``x`` (P, H, W) with ``P = N * C``; one thread per
output element (forward, average backward gathers per input element). Windows are
clamped to the unpadded input, so padding is never read (-inf for max, zero counted in
the divisor for average). Max-pool backward scatters ``dy`` to the recorded indices with
atomic adds; where windows overlap, the order of the adds (hence the last bits of a sum)
may vary between runs.
"""

from __future__ import annotations

import math

from numba import cuda

from kernels import _cuda


def _params(kernel_size, stride, padding) -> tuple[int, ...]:
    """(KH, KW, SH, SW, PH, PW); ``stride=None`` means ``kernel_size``."""
    k = _cuda.pair(kernel_size)
    s = k if stride is None else _cuda.pair(stride)
    return k + s + _cuda.pair(padding)


def _out_size(hw, params) -> tuple[int, int]:
    kh, kw, sh, sw, ph, pw = params
    return (hw[0] + 2 * ph - kh) // sh + 1, (hw[1] + 2 * pw - kw) // sw + 1


@cuda.jit(device=True)
def _span(o, k, s, p, size):
    """Clamped input range ``[start, stop)`` of window ``o`` along one axis."""
    start = o * s - p
    return max(start, 0), min(start + k, size)


@cuda.jit(device=True)
def _unravel(i, rows, cols):
    """(plane, row, col) of the flat index ``i`` into (P, rows, cols)."""
    p, r = _cuda.div_rem(i, rows * cols)
    row, col = _cuda.div_rem(r, cols)
    return p, row, col


@cuda.jit
def _maxpool_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    _, h_, w_ = x.shape
    _, oh_, ow_ = y.shape
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        p, oh, ow = _unravel(i, oh_, ow_)
        h0, h1 = _span(oh, kh, sh, ph, h_)
        w0, w1 = _span(ow, kw, sw, pw, w_)
        best = x[p, h0, w0]
        at = h0 * w_ + w0
        for h in range(h0, h1):
            for w in range(w0, w1):
                v = x[p, h, w]
                if v > best or math.isnan(v):
                    best = v
                    at = h * w_ + w
        y[p, oh, ow] = best
        indices[p, oh, ow] = at


@cuda.jit
def _maxpool_backward(dy, indices, dx):
    length = dy.shape[1]
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        p, j = _cuda.div_rem(i, length)
        cuda.atomic.add(dx, (p, indices[p, j]), dy[p, j])


@cuda.jit
def _avgpool_forward(x, y, kh, kw, sh, sw, ph, pw):
    _, h_, w_ = x.shape
    _, oh_, ow_ = y.shape
    count = y.dtype.type(kh * kw)
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        p, oh, ow = _unravel(i, oh_, ow_)
        h0, h1 = _span(oh, kh, sh, ph, h_)
        w0, w1 = _span(ow, kw, sw, pw, w_)
        total = y.dtype.type(0)
        for h in range(h0, h1):
            for w in range(w0, w1):
                total += x[p, h, w]
        y[p, oh, ow] = total / count


@cuda.jit(device=True)
def _windows(pos, k, s, pad, out):
    """Range ``[first, last]`` of the windows along one axis that contain input ``pos``."""
    first = max(0, (pos + pad - k) // s + 1)
    last = min(out - 1, (pos + pad) // s)
    return first, last


@cuda.jit
def _avgpool_backward(dy, dx, kh, kw, sh, sw, ph, pw):
    _, oh_, ow_ = dy.shape
    _, h_, w_ = dx.shape
    count = dx.dtype.type(kh * kw)
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        p, h, w = _unravel(i, h_, w_)
        oh0, oh1 = _windows(h, kh, sh, ph, oh_)
        ow0, ow1 = _windows(w, kw, sw, pw, ow_)
        total = dx.dtype.type(0)
        for oh in range(oh1, oh0 - 1, -1):  # the reference's order: kernel offsets ascending
            for ow in range(ow1, ow0 - 1, -1):
                total += dy[p, oh, ow] / count
        dx[p, h, w] = total


def _planes(a):
    """View (N, C, H, W) as a stack of N * C planes."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2], a.shape[3])


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling on the device.

    Parameters
    ----------
    x : device array (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (int, int)
        ``stride=None`` means ``kernel_size``; ``padding <= kernel_size / 2``.

    Returns
    -------
    y : device array (N, C, OH, OW), x's dtype; a NaN in a window wins
    indices : device array (N, C, OH, OW), int64
        Flat index ``h * W + w`` of each maximum in its input plane; ties go to the first
        in row-major window order.
    """
    params = _params(kernel_size, stride, padding)
    shape = x.shape[:2] + _out_size(x.shape[2:], params)
    y = _cuda.empty(shape, x.dtype)
    indices = _cuda.empty(shape, "int64")
    _maxpool_forward[_cuda.grid(y.size)](_planes(x), _planes(y), _planes(indices), *params)
    return y, indices


def maxpool2d_backward(dy, indices, x_shape):
    """Gradient of max pooling: each ``dy`` is added to ``dx`` at its window's maximum.

    Parameters
    ----------
    dy : device array (N, C, OH, OW), float32 or float64
    indices : device array (N, C, OH, OW), int64, from :func:`maxpool2d_forward`
    x_shape : tuple (N, C, H, W), the forward input's shape

    Returns
    -------
    device array ``dx`` (N, C, H, W), dy's dtype.
    """
    n, c, h, w = x_shape
    dx = _cuda.zeros((n * c, h * w), dy.dtype)
    dy2 = dy.reshape(n * c, dy.size // (n * c))
    _maxpool_backward[_cuda.grid(dy.size)](dy2, indices.reshape(*dy2.shape), dx)
    return dx.reshape(n, c, h, w)


def avgpool2d_forward(x, kernel_size, stride=None, padding=0):
    """Average pooling on the device; zero padding counts in the divisor ``KH * KW``.

    Parameters
    ----------
    x : device array (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (int, int), as in :func:`maxpool2d_forward`

    Returns
    -------
    device array (N, C, OH, OW), x's dtype.
    """
    params = _params(kernel_size, stride, padding)
    y = _cuda.empty(x.shape[:2] + _out_size(x.shape[2:], params), x.dtype)
    _avgpool_forward[_cuda.grid(y.size)](_planes(x), _planes(y), *params)
    return y


def avgpool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of average pooling: each input element gathers ``dy / (KH * KW)`` from
    the windows that contain it.

    Parameters
    ----------
    dy : device array (N, C, OH, OW), float32 or float64
    x_shape : tuple (N, C, H, W), the forward input's shape
    kernel_size, stride, padding : int or (int, int), as in the forward call

    Returns
    -------
    device array ``dx`` (N, C, H, W), dy's dtype.
    """
    dx = _cuda.empty(tuple(x_shape), dy.dtype)
    params = _params(kernel_size, stride, padding)
    _avgpool_backward[_cuda.grid(dx.size)](_planes(dy), _planes(dx), *params)
    return dx
