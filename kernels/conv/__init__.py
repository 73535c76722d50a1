"""2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``), forward and backward.

Layouts: x ``(N, C, H, W)``, w ``(OC, C, KH, KW)`` (PyTorch's), b ``(OC,)``,
y ``(N, OC, OH, OW)`` with ``OH = (H + 2*PH - KH) // SH + 1`` and
``OW = (W + 2*PW - KW) // SW + 1``; zero padding. float32 or float64, not mixed.
See ``kernels.conv.cpu`` for the implementation (register-blocked direct convolution on
tables of offsets, no BLAS).
"""

from __future__ import annotations

import numba
import numpy as np

from kernels import _checks, _isa
from kernels.conv import cpu

X = "(N, C, H, W)"
W = "(OC, C, KH, KW)"


def _geometry(op: str, x: np.ndarray, w: np.ndarray, stride, padding) -> tuple[int, ...]:
    """Validate stride, padding and the kernel size; return
    ``(KH, KW, SH, SW, PH, PW, OH, OW)``."""
    sh, sw = _checks.int_pair(op, "stride", stride, 1)
    ph, pw = _checks.int_pair(op, "padding", padding, 0)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"{op}: w must have shape {W} with C = {x.shape[1]} (the channels of x), got {w.shape}"
        )
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    if min(kh, kw) < 1 or oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: kernel (KH, KW) = {(kh, kw)} must be non-empty and fit the padded input "
            f"(H + 2*PH, W + 2*PW) = {(h + 2 * ph, wd + 2 * pw)}"
        )
    return kh, kw, sh, sw, ph, pw, oh, ow


def _chunks(n: int, parallel: bool) -> int:
    """Batch chunks for the kernels: one per thread (at most one per image), 1 if serial."""
    return max(1, min(numba.get_num_threads(), n)) if parallel else 1


def tile(dtype: np.dtype, channels: int) -> tuple[int, int]:
    """The register tile this machine uses (``kernels._isa.tile`` for the host's ISA).

    Parameters
    ----------
    dtype : float32 or float64
    channels : int
        Output channels of the tiles (``OC`` forward; ``min(C, OC)`` backward).

    Returns
    -------
    (pixels, lanes) : the tile's pixels and channels; ``kernels.conv.cpu.kernels(pixels,
    lanes)`` are its kernels, ``cpu.blocks(w, lanes)`` its weight packing.
    """
    return _isa.tile(_isa.host(), dtype, channels)


def _taps(w: np.ndarray) -> np.ndarray:
    """``w (O, I, KH, KW)`` as ``(O, KH*I*KW)``, taps in ``(kh, i, kw)`` order (the kernels')."""
    o, i, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(o, kh * i * kw)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    *,
    parallel: bool = True,
) -> np.ndarray:
    """2-D convolution ``y = conv2d(x, w) + b``.

    Parameters
    ----------
    x : ndarray (N, C, H, W), float32 or float64
    w : ndarray (OC, C, KH, KW), same dtype as ``x``
    b : ndarray (OC,), same dtype as ``x``, or None (no bias)
    stride : int or (SH, SW), each >= 1
    padding : int or (PH, PW), each >= 0 (zero padding on both sides)
    parallel : bool
        Use the multi-threaded variant (the batch is split across threads).

    Returns
    -------
    ndarray (N, OC, OH, OW), dtype of ``x``.
    """
    op = "conv2d_forward"
    x = _checks.float_array(op, "x", x, X)
    w = _checks.float_array(op, "w", w, W)
    if b is not None:
        b = _checks.float_array(op, "b", b, "(OC,)")
        _checks.same_dtype(op, x=x, w=w, b=b)
        _checks.shape_is(op, "b", b, (w.shape[0],), "(OC,)")
    _checks.same_dtype(op, x=x, w=w)
    geom = _geometry(op, x, w, stride, padding)
    if impl := _checks.cuda_impl(op, "conv", x=x, w=w, b=b):
        return impl.conv2d_forward(x, w, b, stride, padding)
    b = np.zeros(w.shape[0], dtype=w.dtype) if b is None else b
    y = np.empty((x.shape[0], w.shape[0], geom[6], geom[7]), dtype=x.dtype)
    pixels, lanes = tile(x.dtype, w.shape[0])
    tables, pads = cpu.forward_plan(*x.shape[1:], geom, pixels)
    cpu.kernels(pixels, lanes)[0](
        x,
        cpu.blocks(w, lanes),
        cpu.blocks(b[:, None, None, None], lanes).reshape(-1, lanes),
        tables,
        pads,
        y.reshape(*y.shape[:2], geom[6] * geom[7]),
        chunks=_chunks(x.shape[0], parallel),
        parallel=parallel,
    )
    return y


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    *,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``conv2d_forward`` with respect to its input, weights and bias.

    Parameters
    ----------
    dy : ndarray (N, OC, OH, OW), upstream gradient, same dtype as ``x``
    x : ndarray (N, C, H, W), the forward input, float32 or float64
    w : ndarray (OC, C, KH, KW), the weights, same dtype as ``x``
    stride, padding : int or pair, as in ``conv2d_forward``
    parallel : bool
        Use the multi-threaded variant (per-thread partial ``dw`` reduced at the end).

    Returns
    -------
    dx : ndarray (N, C, H, W)
    dw : ndarray (OC, C, KH, KW)
    db : ndarray (OC,)
        All in the dtype of ``x``; ``db`` is returned even if the layer has no bias.
    """
    op = "conv2d_backward"
    dy = _checks.float_array(op, "dy", dy, "(N, OC, OH, OW)")
    x = _checks.float_array(op, "x", x, X)
    w = _checks.float_array(op, "w", w, W)
    _checks.same_dtype(op, dy=dy, x=x, w=w)
    geom = _geometry(op, x, w, stride, padding)
    _checks.shape_is(op, "dy", dy, (x.shape[0], w.shape[0], *geom[6:]), "(N, OC, OH, OW)")
    if impl := _checks.cuda_impl(op, "conv", dy=dy, x=x, w=w):
        return impl.conv2d_backward(dy, x, w, stride, padding)
    dx = np.empty_like(x)
    chunks = _chunks(x.shape[0], parallel)
    dw_parts = np.empty((chunks, w.shape[0], w.shape[2] * w.shape[3] * w.shape[1]), w.dtype)
    db_parts = np.empty((chunks, w.shape[0]), dtype=w.dtype)
    n_chunk = -(-x.shape[0] // chunks)
    pixels, lanes = tile(x.dtype, min(w.shape[:2]))
    tables, xframe, dframe = cpu.backward_plan(n_chunk, *x.shape[1:], w.shape[0], geom, pixels)
    wf = w[:, :, ::-1, ::-1].swapaxes(0, 1)
    cpu.kernels(pixels, lanes)[1](
        dy.reshape(*dy.shape[:2], geom[6] * geom[7]),
        x,
        (cpu.blocks(wf, lanes), _taps(wf)),
        tables,
        (xframe, dframe),
        dx,
        dw_parts,
        db_parts,
        chunks=chunks,
        parallel=parallel,
    )
    dw_taps = dw_parts.sum(axis=0).reshape(w.shape[0], w.shape[2], w.shape[3], w.shape[1])
    return dx, np.ascontiguousarray(dw_taps.transpose(0, 3, 1, 2)), db_parts.sum(axis=0)
