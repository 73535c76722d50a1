"""2-d max and average pooling (PyTorch's ``max_pool2d`` / ``avg_pool2d``): forward and backward.

Floor mode, no dilation. Padding is implicit (-inf for max, zeros for average, counted in
the average's divisor as PyTorch's ``count_include_pad=True``) and at most half the kernel
per dimension, as in PyTorch. Max pooling returns PyTorch's ``return_indices``: the flat
index ``h * W + w`` of each maximum in its unpadded input plane.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from kernels import _checks
from kernels.pool import cpu

NCHW = "(N, C, H, W)"
NCOO = "(N, C, OH, OW)"
Pair = int | tuple[int, int]


def _geometry(
    op: str, hw: tuple[int, int], kernel_size: Pair, stride: Pair | None, padding: Pair
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate the pooling arguments for an input plane ``hw``.

    Returns
    -------
    tuple
        ``(KH, KW, SH, SW, PH, PW)`` and ``(OH, OW)``.
    """
    k = _checks.int_pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _checks.int_pair(op, "stride", stride, 1)
    p = _checks.int_pair(op, "padding", padding, 0)
    if any(2 * pi > ki for pi, ki in zip(p, k, strict=True)):
        raise ValueError(
            f"{op}: padding must be at most half of kernel_size, got padding={p}, kernel_size={k}"
        )
    padded = tuple(n + 2 * pi for n, pi in zip(hw, p, strict=True))
    if any(ki > n for ki, n in zip(k, padded, strict=True)):
        raise ValueError(
            f"{op}: kernel_size {k} is larger than the padded input (H + 2PH, W + 2PW) = {padded}"
        )
    out = tuple((n - ki) // si + 1 for n, ki, si in zip(padded, k, s, strict=True))
    return k + s + p, out


def _forward_args(
    op: str, x: np.ndarray, kernel_size: Pair, stride: Pair | None, padding: Pair
) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...], ModuleType | None]:
    """Validate a forward call.

    Returns
    -------
    tuple
        ``x`` (C-contiguous), ``(KH, KW, SH, SW, PH, PW)``, ``(OH, OW)``, and
        ``kernels.pool.cuda`` for a device ``x``, else None.
    """
    x = _checks.float_array(op, "x", x, NCHW)
    params, out = _geometry(op, x.shape[2:], kernel_size, stride, padding)
    return x, params, out, _checks.cuda_impl(op, "pool", x=x)


def _x_shape(op: str, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Validate ``x_shape`` as four positive ints ``(N, C, H, W)``."""
    shape = tuple(x_shape) if isinstance(x_shape, (tuple, list)) else ()
    if len(shape) != 4 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape):
        raise ValueError(f"{op}: x_shape must be 4 positive ints {NCHW}, got {x_shape!r}")
    n, c, h, w = (int(v) for v in shape)
    return n, c, h, w


def _indices(op: str, indices: np.ndarray, dy: np.ndarray, plane: int) -> np.ndarray:
    """Validate max-pool ``indices``: int64, ``dy``'s shape, values in ``[0, H * W)``."""
    device = _checks.is_device(indices)
    if not (device or isinstance(indices, np.ndarray)) or indices.dtype != np.int64:
        given = getattr(indices, "dtype", type(indices).__name__)
        raise ValueError(f"{op}: indices must be an int64 numpy array {NCOO}, got {given}")
    _checks.shape_is(op, "indices", indices, dy.shape, "dy.shape")
    if device:  # the range is checked on the host only (no silent device copy)
        return _checks.device_contiguous(op, "indices", indices)
    if indices.size and (indices.min() < 0 or indices.max() >= plane):
        raise ValueError(f"{op}: indices must lie in [0, H * W) = [0, {plane})")
    return np.ascontiguousarray(indices)


def _planes(a: np.ndarray) -> np.ndarray:
    """View (N, C, H, W) as a stack of N * C planes."""
    return a.reshape(-1, *a.shape[2:])


def maxpool2d_forward(
    x: np.ndarray,
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    *,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling over ``kernel_size`` windows.

    Parameters
    ----------
    x : ndarray (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (int, int)
        ``stride=None`` means ``kernel_size``; ``padding <= kernel_size / 2`` per dimension.
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    y : ndarray (N, C, OH, OW), x's dtype
        ``OH = (H + 2PH - KH) // SH + 1``, likewise ``OW``. A NaN in a window wins.
    indices : ndarray (N, C, OH, OW), int64
        Flat index ``h * W + w`` of each maximum in its input plane; ties go to the
        first in row-major window order.
    """
    x, params, out, impl = _forward_args("maxpool2d_forward", x, kernel_size, stride, padding)
    if impl:
        return impl.maxpool2d_forward(x, kernel_size, stride, padding)
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    indices = np.empty(y.shape, dtype=np.int64)
    planes = _planes(x), _planes(y), _planes(indices)
    if params == (2, 2, 2, 2, 0, 0):
        cpu.maxpool2x2_forward(*planes, parallel=parallel)
    else:
        cpu.maxpool2d_forward(*planes, *params, parallel=parallel)
    return y, indices


def maxpool2d_backward(
    dy: np.ndarray, indices: np.ndarray, x_shape: tuple[int, ...], *, parallel: bool = True
) -> np.ndarray:
    """Gradient of max pooling: each ``dy`` is added to ``dx`` at its window's maximum.

    Parameters
    ----------
    dy : ndarray (N, C, OH, OW), float32 or float64
    indices : ndarray (N, C, OH, OW), int64, from :func:`maxpool2d_forward`
    x_shape : tuple (N, C, H, W), the forward input's shape
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``dx`` (N, C, H, W), dy's dtype.
    """
    op = "maxpool2d_backward"
    dy = _checks.float_array(op, "dy", dy, NCOO)
    N, C, H, W = _x_shape(op, x_shape)
    _checks.shape_is(op, "dy", dy, (N, C) + dy.shape[2:], "(N, C, OH, OW) with x_shape's N, C")
    indices = _indices(op, indices, dy, H * W)
    if impl := _checks.cuda_impl(op, "pool", dy=dy, indices=indices):
        return impl.maxpool2d_backward(dy, indices, (N, C, H, W))
    dx = np.empty((N * C, H * W), dtype=dy.dtype)
    cpu.maxpool2d_backward(dy.reshape(N * C, -1), indices.reshape(N * C, -1), dx, parallel=parallel)
    return dx.reshape(N, C, H, W)


def avgpool2d_forward(
    x: np.ndarray,
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    *,
    parallel: bool = True,
) -> np.ndarray:
    """Average pooling; zero padding counts in the divisor ``KH * KW``.

    Parameters
    ----------
    x : ndarray (N, C, H, W), float32 or float64
    kernel_size, stride, padding : int or (int, int), as in :func:`maxpool2d_forward`
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray (N, C, OH, OW), x's dtype; ``OH = (H + 2PH - KH) // SH + 1``, likewise ``OW``.
    """
    x, params, out, impl = _forward_args("avgpool2d_forward", x, kernel_size, stride, padding)
    if impl:
        return impl.avgpool2d_forward(x, kernel_size, stride, padding)
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    cpu.avgpool2d_forward(_planes(x), _planes(y), *params, parallel=parallel)
    return y


def avgpool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    *,
    parallel: bool = True,
) -> np.ndarray:
    """Gradient of average pooling: each ``dy / (KH * KW)`` is added over its window.

    Parameters
    ----------
    dy : ndarray (N, C, OH, OW), float32 or float64
    x_shape : tuple (N, C, H, W), the forward input's shape
    kernel_size, stride, padding : int or (int, int), as in the forward call
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``dx`` (N, C, H, W), dy's dtype.
    """
    op = "avgpool2d_backward"
    dy = _checks.float_array(op, "dy", dy, NCOO)
    N, C, H, W = _x_shape(op, x_shape)
    params, out = _geometry(op, (H, W), kernel_size, stride, padding)
    _checks.shape_is(op, "dy", dy, (N, C) + out, NCOO)
    if impl := _checks.cuda_impl(op, "pool", dy=dy):
        return impl.avgpool2d_backward(dy, (N, C, H, W), kernel_size, stride, padding)
    dx = np.empty((N * C, H, W), dtype=dy.dtype)
    cpu.avgpool2d_backward(_planes(dy), dx, *params, parallel=parallel)
    return dx.reshape(N, C, H, W)
