"""NumPy references for 2-d max and average pooling: the specification.

PyTorch semantics: floor mode, implicit padding (-inf for max, zeros counted in the
divisor for average), max-pool indices ``h * W + w`` into the unpadded input plane.
"""

import numpy as np


def _pair(v) -> tuple[int, int]:
    return (v, v) if np.ndim(v) == 0 else (v[0], v[1])


def _geometry(x_shape, kernel_size, stride, padding):
    """Return ``(KH, KW), (SH, SW), (PH, PW), (OH, OW)``."""
    (KH, KW), (PH, PW) = _pair(kernel_size), _pair(padding)
    SH, SW = _pair(kernel_size if stride is None else stride)
    H, W = x_shape[-2:]
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    return (KH, KW), (SH, SW), (PH, PW), (OH, OW)


def _window(a: np.ndarray, i: int, j: int, stride, out) -> np.ndarray:
    """Element ``(i, j)`` of every window of the padded ``a``: shape ``(..., OH, OW)``."""
    return a[..., i : i + stride[0] * out[0] : stride[0], j : j + stride[1] * out[1] : stride[1]]


def maxpool2d_forward_ref(x, kernel_size, stride=None, padding=0):
    """Max pooling of ``x`` (N, C, H, W) -> ``(y, indices)``, both (N, C, OH, OW).

    Scans each window in row-major order and takes an element when it is greater than
    the running max or NaN (PyTorch's rule: first of equal maxima, last NaN).
    """
    (KH, KW), s, (PH, PW), out = _geometry(x.shape, kernel_size, stride, padding)
    H, W = x.shape[-2:]
    pads = ((0, 0), (0, 0), (PH, PH), (PW, PW))
    xp = np.pad(x, pads, constant_values=-np.inf)
    flat = np.pad(np.arange(H * W).reshape(H, W), pads[2:], constant_values=-1)
    first_h = np.maximum(np.arange(out[0]) * s[0] - PH, 0)
    first_w = np.maximum(np.arange(out[1]) * s[1] - PW, 0)
    indices = np.broadcast_to(first_h[:, None] * W + first_w, x.shape[:2] + out).copy()
    y = np.full(x.shape[:2] + out, -np.inf, dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            v = _window(xp, i, j, s, out)
            take = (v > y) | np.isnan(v)
            y = np.where(take, v, y)
            indices = np.where(take, _window(flat, i, j, s, out), indices)
    return y, indices.astype(np.int64)


def maxpool2d_backward_ref(dy, indices, x_shape):
    """Scatter-add ``dy`` (N, C, OH, OW) into ``dx`` of ``x_shape`` at ``indices``."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)
    n, c = np.indices(dy.shape[:2])
    np.add.at(dx, (n[..., None], c[..., None], indices.reshape(N, C, -1)), dy.reshape(N, C, -1))
    return dx.reshape(x_shape)


def avgpool2d_forward_ref(x, kernel_size, stride=None, padding=0):
    """Average pooling of ``x`` (N, C, H, W); zero padding counts in the divisor KH*KW."""
    (KH, KW), s, (PH, PW), out = _geometry(x.shape, kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    total = np.zeros(x.shape[:2] + out, dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            total += _window(xp, i, j, s, out)
    return total / x.dtype.type(KH * KW)


def avgpool2d_backward_ref(dy, x_shape, kernel_size, stride=None, padding=0):
    """Spread each ``dy`` (N, C, OH, OW) evenly over its window; dx has ``x_shape``."""
    (KH, KW), s, (PH, PW), out = _geometry(x_shape, kernel_size, stride, padding)
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dy.dtype)
    g = dy / dy.dtype.type(KH * KW)
    for i in range(KH):
        for j in range(KW):
            _window(dxp, i, j, s, out)[...] += g
    return dxp[:, :, PH : PH + H, PW : PW + W].copy()
