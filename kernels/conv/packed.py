"""The forward convolution with weights packed once for the host's register tile
(inference), and the checks and call it shares with ``conv2d_forward``.

- ``pack_conv2d``: weights and bias packed once (``PackedConv2d``);
- ``conv2d_forward_packed``: one call, checked, into the caller's buffer, with an optional
  fused epilogue (ReLU, ReLU + 2x2 max pooling);
- ``bind_conv2d_forward``: the same for inputs of one shape, checked once, as a function of
  ``x`` alone (an inference plan's step at batch 1 is a few tens of microseconds: the
  checks of each call would cost a fifth of it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from kernels import _checks, _isa
from kernels.conv import cpu, tables

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
    lanes)`` are its kernels, ``tables.blocks(w, lanes)`` its weight packing (``pack_conv2d``
    packs for this tile).
    """
    return _isa.tile(_isa.host(), dtype, channels)


def _pack(w: np.ndarray, b: np.ndarray | None, stride: tuple, padding: tuple) -> PackedConv2d:
    """``w`` and ``b`` (checked) packed for the host's tile over ``OC`` output channels."""
    pixels, lanes = tile(w.dtype, w.shape[0])
    b = np.zeros(w.shape[0], dtype=w.dtype) if b is None else b
    init = tables.blocks(b[:, None, None, None], lanes).reshape(-1, lanes)
    return PackedConv2d(w.shape, stride, padding, (pixels, lanes), tables.blocks(w, lanes), init)


@functools.lru_cache(maxsize=256)
def _frame(op: str, x_shape: tuple, packed_shape: tuple, pixels: int) -> tuple:
    """``(y_shape, offsets, pads)`` of the forward of inputs of ``x_shape`` with packed weights
    of ``packed_shape = (weight_shape, stride, padding)`` (checked by ``_fit``) and tiles of
    ``pixels`` (``tables.forward_plan``). Cached, as a failed check is not: every inference
    call checks its input (this way in 0.3 us, against 1.2 us; 2-core AMD EPYC VM,
    avx512f, 2026-12)."""
    geom = _fit(op, x_shape, *packed_shape)
    y_shape = (x_shape[0], packed_shape[0][0], geom[6], geom[7])
    return (y_shape, *tables.forward_plan(*x_shape[1:], geom, pixels))


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
    epilogue: str = "",
    buffer: np.ndarray | None = None,
    parallel: bool = True,
    parts: int = 1,
) -> np.ndarray:
    """``conv2d_forward`` with weights packed once (``pack_conv2d``) and an optional fused
    epilogue, into ``out`` if given.

    Parameters
    ----------
    x : ndarray (N, C, H, W), the dtype of the packed weights, on the host
    packed : PackedConv2d
    out : ndarray, C-contiguous, dtype of ``x``, or None (a new array)
        The result, written entirely: ``(N, OC, OH, OW)``, or ``(N, OC, OH // 2, OW // 2)``
        with pooling. It must not overlap ``x``.
    epilogue : "", "relu" or "relu+maxpool2x2"
        Applied to each image's output while it is in cache: nothing, ``relu``, or ``relu``
        and 2x2, stride 2 max pooling (floor mode; a NaN in a window wins), as the layers
        would.
    buffer : ndarray (N, OC, OH, OW), C-contiguous, dtype of ``x``, or None
        With pooling, receives the convolution's output (a new array if None); else unused.
    parallel : bool
        Use the threads: the batch is split into chunks of images, or, with ``parts``, each
        image into parts.
    parts : int, >= 1
        With ``parallel``, split each image's output pixels into this many parts (runs of
        whole register tiles, at most one per tile) that run at once on the threads, then
        its epilogue into as many parts of its channels: for fewer images than threads.
        Each part pads the whole image, and a parallel region costs about 2 us while
        Numba's threads spin (``kernels._jit``), tens of microseconds once they sleep.

    Returns
    -------
    ndarray: ``out``, or a new array in the dtype of ``x``.
    """
    op = "conv2d_forward_packed"
    x = _input(op, x, packed)
    run, out = _forward_call(op, x.shape, packed, (out, buffer, epilogue), parallel, parts)
    run(x)
    return out


def bind_conv2d_forward(
    packed: PackedConv2d,
    x_shape: tuple[int, int, int, int],
    out: np.ndarray | None = None,
    *,
    epilogue: str = "",
    buffer: np.ndarray | None = None,
    parallel: bool = True,
    parts: int = 1,
) -> Callable[[np.ndarray], np.ndarray]:
    """``conv2d_forward_packed`` for inputs of one shape, checked once: ``f(x)`` computes
    into the same ``out`` each time and returns it.

    Parameters
    ----------
    packed : PackedConv2d
    x_shape : (N, C, H, W), the inputs' shape (their dtype: that of the packed weights)
    out, epilogue, buffer, parallel, parts
        As in ``conv2d_forward_packed``; ``out`` and ``buffer`` are allocated once if None.

    Returns
    -------
    f : callable
        ``f(x)`` for a C-contiguous host array ``x`` of ``x_shape`` in the packed weights'
        dtype (else ValueError) returns ``out``, overwritten.
    """
    op = "bind_conv2d_forward"
    shape = tuple(x_shape)
    _input(op, np.empty(shape, packed.weights.dtype), packed)  # its checks, once
    run, out = _forward_call(op, shape, packed, (out, buffer, epilogue), parallel, parts)
    dtype = packed.weights.dtype

    def bound(x: np.ndarray) -> np.ndarray:
        if not (
            type(x) is np.ndarray and x.shape == shape and x.dtype == dtype and x.flags.c_contiguous
        ):
            raise ValueError(
                f"{op}: x must be a C-contiguous {dtype} numpy array of shape {shape} "
                "(the shape it was bound to)"
            )
        run(x)
        return out

    return bound


def _forward_call(
    op: str, x_shape: tuple, packed: PackedConv2d, outputs: tuple, parallel: bool, parts: int
) -> tuple[Callable[[np.ndarray], None], np.ndarray]:
    """``(run, out)``: ``run(x)`` computes ``conv2d(x, packed)`` and its epilogue into ``out``
    for inputs ``x`` of ``x_shape`` (checked), ``outputs = (out, buffer, epilogue)`` checked
    (or allocated) as ``conv2d_forward_packed`` says. The kernel runs over chunks of the
    batch, or, for fewer images than threads, ``parts`` chunks of each image's tiles."""
    out, buffer, epilogue = outputs
    frame = _frame(op, x_shape, packed.shape, packed.tile[0])
    if epilogue not in cpu.EPILOGUES:
        raise ValueError(f"{op}: epilogue must be one of {cpu.EPILOGUES}, got {epilogue!r}")
    if parts != 1 and (not _checks._is_int(parts) or parts < 1):
        raise ValueError(f"{op}: parts must be an int >= 1, got {parts!r}")
    (shape, offsets, pads), dtype = frame, packed.weights.dtype
    layout, y = "(N, OC, OH, OW)", None
    if epilogue == "relu+maxpool2x2":
        if min(shape[2:]) < 2:
            raise ValueError(f"{op}: the output (N, OC, OH, OW) = {shape} is too small to pool 2x2")
        y = _output(op, "buffer", buffer, (layout, shape), dtype)
        shape, layout = (*shape[:2], shape[2] // 2, shape[3] // 2), "(N, OC, OH // 2, OW // 2)"
    out = _output(op, "out", out, (layout, shape), dtype)
    y = out if y is None else y
    parts = min(parts, offsets[1].size // packed.tile[0])
    chunks = x_shape[0] * parts if parallel and parts > 1 else _chunks(x_shape[0], parallel)
    args = (
        packed.weights,
        packed.bias,
        offsets,
        pads,
        y.reshape(*y.shape[:2], y.shape[2] * y.shape[3]),
        out.reshape(*out.shape[:2], out.shape[2] * out.shape[3]),
        cpu.EPILOGUES.index(epilogue),
    )
    kernel = cpu.kernels(*packed.tile)[0].runner(chunks, parallel=chunks > 1)
    return lambda x: kernel(x, *args), out


def _output(op: str, name: str, a: object, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``a`` checked as an output of ``shape = (layout, dims)`` and ``dtype`` (a new array if
    None)."""
    layout, shape = shape
    if a is None:
        return np.empty(shape, dtype)
    if not (
        type(a) is np.ndarray and a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
    ):
        raise ValueError(
            f"{op}: {name} must be a C-contiguous {dtype} numpy array of shape {layout} = "
            f"{shape}, or None"
        )
    return a
