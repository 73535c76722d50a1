"""2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``), forward and backward.

Layouts: x ``(N, C, H, W)``, w ``(OC, C, KH, KW)`` (PyTorch's), b ``(OC,)``,
y ``(N, OC, OH, OW)`` with ``OH = (H + 2*PH - KH) // SH + 1`` and
``OW = (W + 2*PW - KW) // SW + 1``; zero padding. float32 or float64, not mixed.

- ``conv2d_forward``, ``conv2d_backward``: the layer's passes (CPU, or CUDA for device
  arrays);
- ``pack_conv2d`` and ``conv2d_forward_packed``: the forward with weights packed once for
  the host's register tile, into a buffer of the caller (inference; CPU);
- ``tile``: the host's register tile.

The implementation is ``kernels.conv.cpu`` (register-blocked direct convolution on tables
of offsets, no BLAS) over the register tile of ``kernels.conv.tile_ir``;
docs/kernels-conv.md explains it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

from kernels import _checks, _isa, _jit
from kernels.conv import cpu

X = "(N, C, H, W)"
W = "(OC, C, KH, KW)"


@dataclass(frozen=True, eq=False)
class PackedConv2d:
    """A convolution's weights and bias packed once for this machine's register tile, for
    any number of ``conv2d_forward_packed`` calls (made by ``pack_conv2d``).

    Attributes
    ----------
    weight_shape : (OC, C, KH, KW)
    stride : (SH, SW)
    padding : (PH, PW)
    tile : (pixels, lanes), the register tile (``tile``) whose kernel runs it
    weights : ndarray (ceil(OC/L), KH*C*KW, L), ``L = lanes``
        The weights, taps in ``(kh, c, kw)`` order, ``OC`` zero-padded to whole blocks.
    bias : ndarray (ceil(OC/L), L)
        The bias (zeros without one), zero-padded likewise.
    """

    weight_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    tile: tuple[int, int]
    weights: np.ndarray
    bias: np.ndarray

    @property
    def shape(self) -> tuple:
        """``(weight_shape, stride, padding)``: what the output's shape depends on."""
        return self.weight_shape, self.stride, self.padding

    @property
    def blocks(self) -> int:
        """Blocks of ``lanes`` output channels: the most parts an image's output splits into."""
        return self.weights.shape[0]


def _geometry(op: str, x: np.ndarray, w: np.ndarray, stride, padding) -> tuple[int, ...]:
    """Validate stride, padding and the kernel size; return
    ``(KH, KW, SH, SW, PH, PW, OH, OW)``."""
    sh, sw = _checks.int_pair(op, "stride", stride, 1)
    ph, pw = _checks.int_pair(op, "padding", padding, 0)
    return _fit(op, x.shape, w.shape, (sh, sw), (ph, pw))


def _fit(op: str, x_shape: tuple, w_shape: tuple, stride: tuple, padding: tuple) -> tuple:
    """Check that weights of ``w_shape`` apply to inputs of ``x_shape`` with ``stride`` and
    ``padding`` (valid pairs); return ``(KH, KW, SH, SW, PH, PW, OH, OW)``."""
    if w_shape[1] != x_shape[1]:
        raise ValueError(
            f"{op}: w must have shape {W} with C = {x_shape[1]} (the channels of x), got {w_shape}"
        )
    (_, _, h, wd), (_, _, kh, kw) = x_shape, w_shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    if min(kh, kw) < 1 or oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: kernel (KH, KW) = {(kh, kw)} must be non-empty and fit the padded input "
            f"(H + 2*PH, W + 2*PW) = {(h + 2 * ph, wd + 2 * pw)}"
        )
    return kh, kw, sh, sw, ph, pw, oh, ow


def _input(op: str, x: object, packed: PackedConv2d) -> np.ndarray:
    """``x`` checked for ``packed``: a host float array ``(N, C, H, W)`` in the dtype of the
    packed weights, C-contiguous (a copy if it was not). Every inference call checks its
    input, so the common case is tested first: 0.2 us, against 2 us for the general checks
    (2-core AMD EPYC VM, avx512f, 2026-12)."""
    if (
        type(x) is np.ndarray
        and x.ndim == 4
        and x.dtype == packed.weights.dtype
        and x.flags.c_contiguous
    ):
        return x
    x = _checks.float_array(op, "x", x, X)
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{op}: x must be a host (NumPy) array, got a CUDA device array")
    _checks.same_dtype(op, x=x, w=packed.weights)
    return x


def _bias(op: str, b: object, oc: int, **arrays: np.ndarray) -> np.ndarray:
    """``b`` checked: a float array ``(OC,)``, ``OC = oc``, in the dtype of ``arrays``."""
    b = _checks.float_array(op, "b", b, "(OC,)")
    _checks.same_dtype(op, **arrays, b=b)
    _checks.shape_is(op, "b", b, (oc,), "(OC,)")
    return b


def _chunks(n: int, parallel: bool) -> int:
    """Batch chunks for the kernels: one per thread (at most one per image), 1 if serial
    (or for one image: without asking Numba for its threads, 0.7 us)."""
    return max(1, min(numba.get_num_threads(), n)) if parallel and n > 1 else 1


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
    lanes)`` are its kernels, ``cpu.blocks(w, lanes)`` its weight packing (``pack_conv2d``
    packs for this tile).
    """
    return _isa.tile(_isa.host(), dtype, channels)


def _taps(w: np.ndarray) -> np.ndarray:
    """``w (O, I, KH, KW)`` as ``(O, KH*I*KW)``, taps in ``(kh, i, kw)`` order (the kernels')."""
    o, i, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(o, kh * i * kw)


def _pack(w: np.ndarray, b: np.ndarray | None, stride: tuple, padding: tuple) -> PackedConv2d:
    """``w`` and ``b`` (checked) packed for the host's tile over ``OC`` output channels."""
    pixels, lanes = tile(w.dtype, w.shape[0])
    b = np.zeros(w.shape[0], dtype=w.dtype) if b is None else b
    init = cpu.blocks(b[:, None, None, None], lanes).reshape(-1, lanes)
    return PackedConv2d(w.shape, stride, padding, (pixels, lanes), cpu.blocks(w, lanes), init)


@functools.lru_cache(maxsize=256)
def _frame(op: str, x_shape: tuple, packed_shape: tuple, pixels: int) -> tuple:
    """``(y_shape, tables, pads)`` of the forward of inputs of ``x_shape`` with packed weights
    of ``packed_shape = (weight_shape, stride, padding)`` (checked by ``_fit``) and tiles of
    ``pixels`` (``cpu.forward_plan``). Cached, as a failed check is not: every inference
    call checks its input (this way in 0.3 us, against 1.2 us; 2-core AMD EPYC VM,
    avx512f, 2026-12)."""
    geom = _fit(op, x_shape, *packed_shape)
    y_shape = (x_shape[0], packed_shape[0][0], geom[6], geom[7])
    return (y_shape, *cpu.forward_plan(*x_shape[1:], geom, pixels))


def _forward(
    x: np.ndarray, packed: PackedConv2d, frame: tuple, y: np.ndarray, parallel: bool, parts: int
) -> np.ndarray:
    """``y = conv2d(x, packed)`` for checked arguments and ``frame = _frame(...)``: the
    tile's forward kernel over chunks of the batch, or over ``parts`` blocks of output
    channels of each image (``_part_calls``)."""
    _, tables, pads = frame
    forward = cpu.kernels(*packed.tile)[0]
    y2 = y.reshape(*y.shape[:2], y.shape[2] * y.shape[3])
    if parallel and parts > 1:
        _jit.run_calls(forward.body, _part_calls(x, packed, (tables, pads), y2, parts))
    else:
        chunks = _chunks(x.shape[0], parallel)
        forward(
            x, packed.weights, packed.bias, tables, pads, y2, chunks=chunks, parallel=chunks > 1
        )
    return y


def _part_calls(
    x: np.ndarray, packed: PackedConv2d, frame: tuple, y2: np.ndarray, parts: int
) -> list[tuple]:
    """Arguments of the forward kernel's body for each part of each image: part ``p`` of
    ``parts`` takes its blocks of output channels and their rows of ``y2 (N, OC, OH*OW)``
    (contiguous: one image), as chunk 0 of 1."""
    blocks, lanes = packed.blocks, packed.tile[1]
    calls = []
    for n in range(x.shape[0]):
        for p in range(parts):
            b0, b1 = p * blocks // parts, (p + 1) * blocks // parts
            c0, c1 = b0 * lanes, min(b1 * lanes, y2.shape[1])
            m, init = packed.weights[b0:b1], packed.bias[b0:b1]
            calls.append((x[n : n + 1], m, init, *frame, y2[n : n + 1, c0:c1], 0, 1))
    return calls


def pack_conv2d(
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> PackedConv2d:
    """Pack a convolution's weights and bias once, for any number of
    ``conv2d_forward_packed`` calls (inference; ``conv2d_forward`` packs them on every call,
    a copy of the weights that counts at batch 1).

    Parameters
    ----------
    w : ndarray (OC, C, KH, KW), float32 or float64, on the host
    b : ndarray (OC,), same dtype as ``w``, or None (no bias)
    stride : int or (SH, SW), each >= 1
    padding : int or (PH, PW), each >= 0 (zero padding on both sides)

    Returns
    -------
    PackedConv2d
        Its fields are fixed and its arrays must not be modified.
    """
    op = "pack_conv2d"
    w = _checks.float_array(op, "w", w, W)
    if b is not None:
        b = _bias(op, b, w.shape[0], w=w)
    if _checks.on_device(w, b):
        raise ValueError(f"{op}: w and b must be host (NumPy) arrays, got a CUDA device array")
    stride = _checks.int_pair(op, "stride", stride, 1)
    return _pack(w, b, stride, _checks.int_pair(op, "padding", padding, 0))


def conv2d_forward_packed(
    x: np.ndarray,
    packed: PackedConv2d,
    out: np.ndarray | None = None,
    *,
    parallel: bool = True,
    parts: int = 1,
) -> np.ndarray:
    """``conv2d_forward`` with weights packed once (``pack_conv2d``), into ``out`` if given.

    Parameters
    ----------
    x : ndarray (N, C, H, W), the dtype of the packed weights, on the host
    packed : PackedConv2d
    out : ndarray (N, OC, OH, OW), C-contiguous, dtype of ``x``, or None (a new array)
        Written entirely; it must not overlap ``x``.
    parallel : bool
        Use the threads: the batch is split into chunks of images, or, with ``parts``, each
        image into parts.
    parts : int, >= 1
        With ``parallel``, split each image's output channels into this many parts (blocks of
        the tile's lanes, at most ``packed.blocks``), run at once on the threads: for fewer
        images than threads (each part costs a thread's wake-up, tens of microseconds).

    Returns
    -------
    ndarray (N, OC, OH, OW): ``out``, or a new array in the dtype of ``x``.
    """
    op = "conv2d_forward_packed"
    x = _input(op, x, packed)
    frame = _frame(op, x.shape, packed.shape, packed.tile[0])
    shape = frame[0]
    if out is None:
        out = np.empty(shape, x.dtype)
    elif not (
        type(out) is np.ndarray
        and out.shape == shape
        and out.dtype == x.dtype
        and out.flags.c_contiguous
    ):
        raise ValueError(
            f"{op}: out must be a C-contiguous {x.dtype} numpy array of shape "
            f"(N, OC, OH, OW) = {shape}, or None"
        )
    if parts != 1 and (not _checks._is_int(parts) or parts < 1):
        raise ValueError(f"{op}: parts must be an int >= 1, got {parts!r}")
    return _forward(x, packed, frame, out, parallel, min(parts, packed.blocks))


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    *,
    parallel: bool = True,
) -> np.ndarray:
    """2-D convolution ``y = conv2d(x, w) + b`` (repeated calls with the same weights:
    ``pack_conv2d`` once, then ``conv2d_forward_packed``).

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
        b = _bias(op, b, w.shape[0], x=x, w=w)
    _checks.same_dtype(op, x=x, w=w)
    geom = _geometry(op, x, w, stride, padding)
    if impl := _checks.cuda_impl(op, "conv", x=x, w=w, b=b):
        return impl.conv2d_forward(x, w, b, stride, padding)
    packed = _pack(w, b, geom[2:4], geom[4:6])
    frame = _frame(op, x.shape, packed.shape, packed.tile[0])
    return _forward(x, packed, frame, np.empty(frame[0], x.dtype), parallel, 1)


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
