"""numba-cuda kernels for 2-D convolution (cross-correlation, as PyTorch), on device arrays.

All three products are implicit GEMMs on shared-memory tiles (``kernels._cuda``); the
im2col matrix is never materialized, its elements are computed from the input on load:

* forward ``y (OC, N*OH*OW) = w (OC, C*KH*KW) @ cols(x)``, plus the bias;
* ``dw (OC, C*KH*KW) = dy (OC, N*OH*OW) @ cols(x).T``, split-K over the batch and output
  pixels into partial products summed in order (each block owns its outputs: no atomics);
* ``dx (C, N*H*W) = w' (C, OC*KH*KW) @ rows(dy)``: each input pixel gathers the output
  pixels whose windows contain it (entries of other strides are zero), no scatter;
* ``db``: per-channel tree reduction of ``dy``.

``geom = (C, H, W, OC, KH, KW, SH, SW, PH, PW, OH, OW)``; zero padding.
"""

from __future__ import annotations

from numba import cuda

from kernels import _cuda


def _geometry(x, w, stride, padding) -> tuple[int, ...]:
    sh, sw = _cuda.pair(stride)
    ph, pw = _cuda.pair(padding)
    _, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    return c, h, wd, oc, kh, kw, sh, sw, ph, pw, oh, ow


@cuda.jit(device=True)
def _offset(k, g):
    """(channel, kh, kw) of the reduction index ``k`` = (channel, kh, kw) of a product."""
    kw_ = g[5]
    ch, r = _cuda.div_rem(k, g[4] * kw_)
    kh, kw = _cuda.div_rem(r, kw_)
    return ch, kh, kw


@cuda.jit(device=True)
def _pixel(col, rows, cols):
    """(n, row, col) of the column index ``col`` = (n, row, col) of a product."""
    n, p = _cuda.div_rem(col, rows * cols)
    row, c = _cuda.div_rem(p, cols)
    return n, row, c


@cuda.jit(device=True)
def _patch(x, g, k, col):
    """Element (k, col) of im2col(x): k = (c, kh, kw), col = (n, oh, ow); 0 in the padding."""
    _, h_, w_, _, _, _, sh, sw, ph, pw, oh_, ow_ = g
    c, kh, kw = _offset(k, g)
    n, oh, ow = _pixel(col, oh_, ow_)
    h = oh * sh - ph + kh
    w = ow * sw - pw + kw
    if h < 0 or h >= h_ or w < 0 or w >= w_:
        return x.dtype.type(0)
    return x[n, c, h, w]


@cuda.jit(device=True)
def _patch_t(x, g, col, k):
    """Element (col, k) of im2col(x).T."""
    return _patch(x, g, k, col)


@cuda.jit(device=True)
def _dy_rows(dy3, g, o, col):
    """Element (o, col) of dy as (OC, N*OH*OW); ``dy3`` is (N, OC, OH*OW)."""
    n, p = _cuda.div_rem(col, dy3.shape[2])
    return dy3[n, o, p]


@cuda.jit(device=True)
def _w_t(w, g, c, k):
    """Element (c, k) of w as (C, OC*KH*KW), k = (oc, kh, kw)."""
    o, kh, kw = _offset(k, g)
    return w[o, c, kh, kw]


@cuda.jit(device=True)
def _dy_patch(dy, g, k, col):
    """dy[n, oc, oh, ow] for k = (oc, kh, kw), col = (n, h, w) when output pixel (oh, ow)
    reads input pixel (h, w) at offset (kh, kw), else 0."""
    _, h_, w_, _, _, _, sh, sw, ph, pw, oh_, ow_ = g
    o, kh, kw = _offset(k, g)
    n, h, w = _pixel(col, h_, w_)
    oh, rh = _cuda.div_rem(h + ph - kh, sh)  # floor division: oh < 0 when h + ph < kh
    ow, rw = _cuda.div_rem(w + pw - kw, sw)
    if oh < 0 or ow < 0 or rh != 0 or rw != 0 or oh >= oh_ or ow >= ow_:
        return dy.dtype.type(0)
    return dy[n, o, oh, ow]


@cuda.jit(device=True)
def _store_y(y3, b, g, z, o, col, acc):
    """y[n, oc, oh, ow] = acc + b[oc]; ``y3`` is (N, OC, OH*OW)."""
    n, p = _cuda.div_rem(col, y3.shape[2])
    y3[n, o, p] = acc + b[o]


@cuda.jit(device=True)
def _store_dx(dx3, extra, g, z, c, col, acc):
    """dx[n, c, h, w] = acc; ``dx3`` is (N, C, H*W)."""
    n, p = _cuda.div_rem(col, dx3.shape[2])
    dx3[n, c, p] = acc


_forward = _cuda.tiled_product(_cuda.load_rows, _patch, _store_y)
_weight_grad = _cuda.tiled_product(_dy_rows, _patch_t, _cuda.store_split)
_input_grad = _cuda.tiled_product(_w_t, _dy_patch, _store_dx)


def conv2d_forward(x, w, b, stride=1, padding=0):
    """2-D convolution ``y = conv2d(x, w) + b`` on the device.

    Parameters
    ----------
    x : device array (N, C, H, W), float32 or float64
    w : device array (OC, C, KH, KW), x's dtype
    b : device array (OC,), x's dtype, or None (no bias)
    stride : int or (SH, SW)
    padding : int or (PH, PW), zero padding on both sides

    Returns
    -------
    device array (N, OC, OH, OW), x's dtype, ``OH = (H + 2*PH - KH) // SH + 1``, likewise OW.
    """
    g = _geometry(x, w, stride, padding)
    n, oc, oh, ow = x.shape[0], w.shape[0], g[10], g[11]
    if b is None:
        b = _cuda.zeros(oc, x.dtype)
    y = _cuda.empty((n, oc, oh, ow), x.dtype)
    w2 = w.reshape(oc, w.size // oc)
    _forward(w2, x, y.reshape(n, oc, oh * ow), b, g, (oc, n * oh * ow, w2.shape[1]))
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """Gradients of :func:`conv2d_forward` with respect to ``x``, ``w`` and ``b``.

    Parameters
    ----------
    dy : device array (N, OC, OH, OW), x's dtype
    x : device array (N, C, H, W), float32 or float64, the forward input
    w : device array (OC, C, KH, KW), x's dtype
    stride, padding : int or pair, as in the forward call

    Returns
    -------
    dx : device array (N, C, H, W)
    dw : device array (OC, C, KH, KW)
    db : device array (OC,)
        All in x's dtype.
    """
    g = _geometry(x, w, stride, padding)
    n, c, h, wd = x.shape
    oc, length = w.shape[0], g[10] * g[11]
    dy3 = dy.reshape(n, oc, length)
    dw = _cuda.split_product(_weight_grad, dy3, x, g, (oc, w.size // oc, n * length), x.dtype)
    dx = _cuda.empty(x.shape, x.dtype)
    shape = (c, n * h * wd, w.size // c)
    _input_grad(w, dy, dx.reshape(n, c, h * wd), dx, g, shape)
    return dx, dw.reshape(w.shape), _cuda.channel_sum(dy3)
