"""2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``), forward and backward.

Layouts: x ``(N, C, H, W)``, w ``(OC, C, KH, KW)`` (PyTorch's), b ``(OC,)``,
y ``(N, OC, OH, OW)`` with ``OH = (H + 2*PH - KH) // SH + 1`` and
``OW = (W + 2*PW - KW) // SW + 1``; zero padding. float32 or float64, not mixed.

- ``conv2d_forward``, ``conv2d_backward``: the layer's passes (CPU, or CUDA for device
  arrays);
- ``pack_conv2d``, ``conv2d_forward_packed`` and ``bind_conv2d_forward``
  (``kernels.conv.packed``): the forward with weights packed once for the host's register
  tile, into a buffer of the caller, with a fused epilogue (inference; CPU);
- ``tile``: the host's register tile.

The implementation is ``kernels.conv.cpu`` (register-blocked direct convolution on tables
of offsets, no BLAS) over the register tile of ``kernels.conv.tile_ir``;
docs/kernels-conv.md explains it.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.activation import relu_backward, relu_forward
from kernels.conv import cpu, packed, tables
from kernels.conv.packed import (
    PackedConv2d,
    W,
    X,
    _bias,
    _chunks,
    _fit,
    _forward_call,
    _pack,
    bind_conv2d_forward,
    conv2d_forward_packed,
    pack_conv2d,
    tile,
)

__all__ = [
    "PackedConv2d",
    "bind_conv2d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_forward_packed",
    "pack_conv2d",
    "tile",
]


def _geometry(op: str, x: np.ndarray, w: np.ndarray, stride, padding) -> tuple[int, ...]:
    """Validate stride, padding and the kernel size; return
    ``(KH, KW, SH, SW, PH, PW, OH, OW)``."""
    sh, sw = _checks.int_pair(op, "stride", stride, 1)
    ph, pw = _checks.int_pair(op, "padding", padding, 0)
    return _fit(op, x.shape, w.shape, (sh, sw), (ph, pw))


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
    relu: bool = False,
    parallel: bool = True,
) -> np.ndarray:
    """2-D convolution ``y = conv2d(x, w) + b``, or ``relu(conv2d(x, w) + b)`` (repeated calls
    with the same weights: ``pack_conv2d`` once, then ``conv2d_forward_packed``).

    Parameters
    ----------
    x : ndarray (N, C, H, W), float32 or float64
    w : ndarray (OC, C, KH, KW), same dtype as ``x``
    b : ndarray (OC,), same dtype as ``x``, or None (no bias)
    stride : int or (SH, SW), each >= 1
    padding : int or (PH, PW), each >= 0 (zero padding on both sides)
    relu : bool
        Apply a ReLU (``kernels.activation.relu_forward``) to each image's output while it
        is in cache: the bits of the two kernels, one pass over memory fewer.
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
        b = _bias(op, b, w.shape[0], x=x, w=w)
    _checks.same_dtype(op, x=x, w=w)
    geom = _geometry(op, x, w, stride, padding)
    if impl := _checks.cuda_impl(op, "conv", x=x, w=w, b=b):
        y = impl.conv2d_forward(x, w, b, stride, padding)
        return relu_forward(y) if relu else y
    packed = _pack(w, b, geom[2:4], geom[4:6])
    run, y = _forward_call(op, x.shape, packed, (None, None, "relu" if relu else ""), parallel, 1)
    run(x)
    return y


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    *,
    relu_out: np.ndarray | None = None,
    input_grad: bool = True,
    parallel: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``conv2d_forward`` with respect to its input, weights and bias (of
    ``relu(conv2d_forward(...))`` with ``relu_out``).

    Parameters
    ----------
    dy : ndarray (N, OC, OH, OW), upstream gradient, same dtype as ``x``
    x : ndarray (N, C, H, W), the forward input, float32 or float64
    w : ndarray (OC, C, KH, KW), the weights, same dtype as ``x``
    stride, padding : int or pair, as in ``conv2d_forward``
    relu_out : ndarray like ``dy``, or None
        The output of a ReLU after the convolution, with ``dy`` its upstream gradient: the
        ReLU's backward (``kernels.activation.relu_backward``) is applied to ``dy`` in
        cache, image by image (the bits of the two kernels).
    input_grad : bool
        Compute ``dx`` (a first layer's is not needed: None is returned instead).
    parallel : bool
        Use the multi-threaded variant (per-thread partial ``dw`` reduced at the end).

    Returns
    -------
    dx : ndarray (N, C, H, W), or None without ``input_grad``
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
    if relu_out is not None:
        relu_out = _checks.float_array(op, "relu_out", relu_out, "(N, OC, OH, OW)")
        _checks.same_dtype(op, dy=dy, relu_out=relu_out)
        _checks.shape_is(op, "relu_out", relu_out, dy.shape, "(N, OC, OH, OW)")
    if impl := _checks.cuda_impl(op, "conv", dy=dy, x=x, w=w, relu_out=relu_out):
        dy = dy if relu_out is None else relu_backward(dy, relu_out)
        dx, dw, db = impl.conv2d_backward(dy, x, w, stride, padding)
        return (dx if input_grad else None), dw, db
    mask = dy[:0] if relu_out is None else relu_out
    dx = np.empty_like(x) if input_grad else x[:0]
    chunks = _chunks(x.shape[0], parallel)
    dw_parts = np.empty((chunks, w.shape[0], w.shape[2] * w.shape[3] * w.shape[1]), w.dtype)
    db_parts = np.empty((chunks, w.shape[0]), dtype=w.dtype)
    n_chunk = -(-x.shape[0] // chunks)
    pixels, lanes = packed.tile(x.dtype, min(w.shape[:2]))  # one place to force a tile
    offsets, xframe, dframe = tables.backward_plan(n_chunk, *x.shape[1:], w.shape[0], geom, pixels)
    wf = w[:, :, ::-1, ::-1].swapaxes(0, 1)
    cpu.kernels(pixels, lanes)[1](
        dy.reshape(*dy.shape[:2], geom[6] * geom[7]),
        mask.reshape(*mask.shape[:2], geom[6] * geom[7]),
        x,
        (tables.blocks(wf, lanes), _taps(wf)),
        offsets,
        (xframe, dframe),
        dx,
        dw_parts,
        db_parts,
        chunks=chunks,
        parallel=parallel,
    )
    dw_taps = dw_parts.sum(axis=0).reshape(w.shape[0], w.shape[2], w.shape[3], w.shape[1])
    dw = np.ascontiguousarray(dw_taps.transpose(0, 3, 1, 2))
    return (dx if input_grad else None), dw, db_parts.sum(axis=0)
