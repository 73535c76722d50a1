"""Numba kernels for 2-D convolution: register-blocked direct convolution on offset tables.

Every product of the forward and backward passes is one form,
``out[o, j] = init[o] + sum_k X[inner[k] + outer[j]] * M[k, o]``, over a zero-padded copy
``X`` of one image (or of a group of images), flattened:

- the tables (``kernels.conv.tables``: offsets, bounds, packed weights, built once per
  shape in NumPy);
- the register tile ``_tile_oc`` over the intrinsic of ``tile_ir`` (LLVM vector code), and
  ``_tile_px`` (runs of pixels, for ``dx`` of fewer than 8 channels);
- the chunk kernels ``_forward`` (with its epilogues, ``_finish``) and ``_backward`` (with
  ``_dw_group``), their launchers on the threads, and the copies that pad and crop their
  buffers; ``kernels(pixels, lanes)`` compiles them per tile shape.

docs/kernels-conv.md explains the design, the layouts and the measurements behind them.
"""

import functools

import numba
import numpy as np

from kernels._isa import BLOCK
from kernels._jit import chunk_kernel, helper, renamed
from kernels.conv.tile_ir import SOURCE_HASH, fma_tile_intrinsic

LANES = BLOCK  # channels per tile; each variant (``kernels``) sets its own
RUN = 64  # pixels per row tile of ``_tile_px``


def _tile_oc(X, inner, outer, bounds, M, init, out, j0, j1):
    """``out[o, j] = init[o] + sum_k X[inner[k] + outer[j]] * M[k, o]`` for ``M (O/16, K,
    16)``, ``init (O/16, 16)``, ``len(outer)`` a multiple of ``PIXELS`` (this variant's tile),
    ``out`` C-contiguous with at least ``O`` rows and ``min(len(outer), out.shape[1])``
    columns computed; offsets are uint64. The tile of ``j`` in ``[P t, P t + P)`` sums ``k``
    over ``[bounds[t, 0], bounds[t, 1])`` only (the other terms read padding zeros).
    Computes the tiles of ``j`` in ``[j0, j1)`` (multiples of ``PIXELS``; ``0, len(outer)``:
    all). ``PIXELS`` and ``_fma_tile`` are globals of each variant (``kernels``)."""
    cols = out.shape[1]
    for ob in range(M.shape[0]):
        mb, iv = M[ob], init[ob]
        for j in range(j0, j1, PIXELS):  # noqa: F821
            t = j // PIXELS  # noqa: F821
            count = min(PIXELS, cols - j)  # noqa: F821
            _fma_tile(  # noqa: F821
                X, inner, outer, j, bounds[t, 0], bounds[t, 1], mb, iv, out, ob * LANES, count
            )


@helper
def _tile_px(X, inner, q0, M, out):
    """``out[o, q] = sum_k M[o, k] * X[inner[k] + q0 + q]`` for ``q < out.shape[1]`` (a multiple
    of 64), ``inner`` uint64: runs of 64 pixels of one output channel, updated 4 taps at a
    time by a loop that LLVM vectorizes."""
    zero = out.dtype.type(0)
    k4 = inner.shape[0] // 4 * 4
    for o in range(M.shape[0]):
        mo = M[o]
        for q in range(0, out.shape[1], RUN):
            ot = out[o, q : q + RUN]
            for i in range(RUN):
                ot[i] = zero
            qq = q0 + np.uint64(q)
            for k in range(0, k4, 4):
                m0, m1, m2, m3 = mo[k], mo[k + 1], mo[k + 2], mo[k + 3]
                x0, x1 = X[inner[k] + qq :], X[inner[k + 1] + qq :]
                x2, x3 = X[inner[k + 2] + qq :], X[inner[k + 3] + qq :]
                for i in range(RUN):
                    ot[i] += m0 * x0[i] + m1 * x1[i] + m2 * x2[i] + m3 * x3[i]
            for k in range(k4, inner.shape[0]):
                m, xk = mo[k], X[inner[k] + qq :]
                for i in range(RUN):
                    ot[i] += m * xk[i]


def _blocks(src, dst, k0, width, stride):
    """``dst[o // 16, row(p), o % 16] = src[o, p]`` with ``row(a*width + b) = k0 + a*stride + b``
    (``dst`` pre-zeroed: padded lanes stay 0); 16 contiguous lanes at a time."""
    for ob in range(dst.shape[0]):
        lanes = min(LANES, src.shape[0] - ob * LANES)
        for a in range(src.shape[1] // width):
            for b in range(width):
                d = dst[ob, k0 + a * stride + b]
                p = a * width + b
                if lanes == LANES:
                    for lane in range(LANES):
                        d[lane] = src[ob * LANES + lane, p]
                else:
                    for lane in range(lanes):
                        d[lane] = src[ob * LANES + lane, p]


@helper
def _pad_into(img, dst, base, frame):
    """``dst[base:]`` viewed as ``(C, HD, WD)`` gets ``[c, top + h*SH, left + w*SW] =
    img[c, h, w]`` for ``frame = (HD, WD, top, left, SH, SW)``; its other entries are left as
    they are (zero). Unsigned indices: no wraparound code, so the row copy vectorizes."""
    hd, wd, top, left, sh, sw = frame
    c_, h_, w_ = img.shape
    step = np.uint64(sw)
    for c in range(c_):
        for h in range(h_):
            row = np.uint64(base + (c * hd + top + h * sh) * wd + left)
            src = img[c, h]
            for w in range(w_):
                dst[row + np.uint64(w) * step] = src[w]


@helper
def _pad_last(img, dst, base, frame):
    """``dst[base:]`` viewed as ``(HP, WP, C)`` gets ``[top + h, left + w, c] = img[c, h, w]``
    for ``frame = (HP, WP, top, left, 1, 1)``; its other entries are left as they are."""
    _, wd, top, left = frame[:4]
    c_, h_, w_ = img.shape
    for h in range(h_):
        for w in range(w_):
            at = np.uint64(base + ((top + h) * wd + left + w) * c_)
            for c in range(c_):
                dst[at + np.uint64(c)] = img[c, h, w]


@helper
def _crop(src, dst, row_stride, j0, j1):
    """``dst[o, h, w] = src[o, h*row_stride + w]`` for the ``h*row_stride + w`` in
    ``[j0, j1)``: whole rows, and the partial rows at either end of the range."""
    o_, h_, w_ = dst.shape
    first, last = -(-j0 // row_stride), min(h_, j1 // row_stride)
    for o in range(o_):
        for h in range(first, last):
            d, s = dst[o, h], src[o, h * row_stride :]
            for w in range(w_):
                d[w] = s[w]
        for h in (first - 1, last):  # the range's partial rows, if any
            if 0 <= h < h_:
                for w in range(max(0, j0 - h * row_stride), min(w_, j1 - h * row_stride)):
                    dst[o, h, w] = src[o, h * row_stride + w]


@helper
def _span(t, chunks, n):
    """Images ``[start, stop)`` of chunk ``t``."""
    return t * n // chunks, (t + 1) * n // chunks


EPILOGUES = ("", "relu", "relu+maxpool2x2")  # what ``_forward`` applies to its output


@helper
def _max_nan(a, b):
    """The larger of ``a`` and ``b``, NaN if either is NaN (max pooling's rule)."""
    return a if (a >= b or a != a) else b


@helper
def _finish(y2, pooled, n, c0, c1, ow, epilogue):
    """Epilogue ``epilogue`` (an index of ``EPILOGUES``) of channels ``[c0, c1)`` of image
    ``n`` of ``y2 (N, OC, OH*OW)``: 1, ``y2 = relu(y2)`` in place; 2, ``pooled (N, OC,
    (OH//2)*(OW//2)) = relu(maxpool2x2(y2))`` (as ``kernels.fused``: a NaN in a window
    wins)."""
    zero = y2.dtype.type(0)
    oh = y2.shape[2] // ow
    for c in range(c0, c1):
        src = y2[n, c]
        if epilogue == 1:
            for i in range(src.shape[0]):
                src[i] = zero if src[i] <= zero else src[i]
        elif epilogue == 2:
            dst = pooled[n, c]
            for r in range(oh // 2):
                top, bottom = src[2 * r * ow :], src[(2 * r + 1) * ow :]
                out = dst[r * (ow // 2) :]
                for q in range(ow // 2):
                    a, b = (
                        _max_nan(top[2 * q], top[2 * q + 1]),
                        _max_nan(bottom[2 * q], bottom[2 * q + 1]),
                    )
                    m = _max_nan(a, b)
                    out[q] = zero if m <= zero else m


def _forward(x, m, init, tables, pads, y2, pooled, epilogue, t, chunks):
    """Chunk ``t`` of ``y2 (N, OC, OH*OW) = conv2d(x, w) + b`` and its epilogue (``_finish``,
    for whole images: for parts, ``_forward_threads`` runs it after all of them), with
    ``m = blocks(w)`` (taps in ``(kh, c, kw)`` order), ``init = blocks(b as (OC, 1, 1, 1))``
    as ``(ceil(OC/16), 16)`` and ``tables, pads = forward_plan(...)``. The ``chunks`` split
    the batch's images or, for fewer images than chunks, each image's tiles into
    ``chunks // N`` parts. ``_tile_oc`` writes straight into ``y2[n]`` when its shape fits
    the tile, else through a scratch buffer (the tiles of the last row read up to ``WP``
    values past the image, hence the spare row of ``xp``)."""
    inner, outer, bounds = tables
    hp, wp, ph, pw, ow, cols = pads
    xp = np.zeros((x.shape[1] * hp + 1) * wp, dtype=x.dtype)
    scratch = np.empty((m.shape[0] * LANES, outer.shape[0]), dtype=x.dtype)
    direct = y2.shape[1] % LANES == 0 and cols == ow  # the last tile stores its valid pixels
    parts = max(1, chunks // x.shape[0])
    start, stop = _span(t, chunks, x.shape[0] * parts)
    for item in range(start, stop):
        n = item // parts
        j0, j1 = _span(item % parts, parts, outer.shape[0] // PIXELS)  # noqa: F821
        j0, j1 = j0 * PIXELS, j1 * PIXELS  # noqa: F821
        _pad_into(x[n], xp, 0, (hp, wp, ph, pw, 1, 1))
        _tile_oc(xp, inner, outer, bounds, m, init, y2[n] if direct else scratch, j0, j1)
        if not direct:
            y = y2[n].reshape((y2.shape[1], y2.shape[2] // ow, ow))
            _crop(scratch, y, cols, j0, j1)
        if parts == 1 and epilogue:
            _finish(y2, pooled, n, 0, y2.shape[1], ow, epilogue)


def _forward_threads(x, m, init, tables, pads, y2, pooled, epilogue, chunks):
    """``_forward``'s chunks on Numba's threads (``chunk_kernel``), then, where they split
    images into parts, the epilogue of each image in as many parts of its channels."""
    inner, outer, bounds = tables
    for t in numba.prange(chunks):
        _body(x, m, init, (inner, outer, bounds), pads, y2, pooled, epilogue, t, chunks)  # noqa: F821
    parts = chunks // x.shape[0]
    if parts > 1 and epilogue:
        for t in numba.prange(chunks):
            n, part = t // parts, t % parts
            c0, c1 = _span(part, parts, y2.shape[1])
            _finish(y2, pooled, n, c0, c1, pads[4], epilogue)


def _dw_group(src, first, x, g0, gn, bufs, frames, db_t):
    """Pad images ``[g0, g0 + gn)`` into ``xg``, their ``dy`` (``src[first:first + gn]``) into
    ``dyt`` (rows in ``(oh, image, ow)`` order) and add their ``dy`` sums to ``db_t (OC/16,
    16)`` (16 independent sums: one running sum would be bound by the latency of an
    addition)."""
    xg, dyt = bufs
    xframe, oh, ow = frames
    size = x.shape[1] * xframe[0] * xframe[1]
    group = dyt.shape[1] // (oh * ow)
    if gn < group:  # the last group of a chunk: the missing images contribute zeros
        dyt.fill(0)
        xg[gn * size :].fill(0)
    for i in range(gn):
        _pad_last(x[g0 + i], xg, i * size, xframe)
        _blocks(src[first + i], dyt, i * ow, ow, group * ow)
    for ob in range(dyt.shape[0]):
        for k in range(dyt.shape[1]):
            for lane in range(LANES):
                db_t[ob, lane] += dyt[ob, k, lane]


@helper
def _relu_masked(dy2, mask, dst, g0, gn):
    """``dst[i] = dy2[g0 + i]`` where ``mask[g0 + i] > 0``, else 0, for ``i < gn``: a ReLU's
    backward (``kernels.activation``'s rule: a NaN in ``mask`` lets ``dy`` through)."""
    zero = dst.dtype.type(0)
    for i in range(gn):
        for c in range(dst.shape[1]):
            d, m, o = dy2[g0 + i, c], mask[g0 + i, c], dst[i, c]
            for j in range(o.shape[0]):
                o[j] = zero if m[j] <= zero else d[j]


def _backward(dy2, mask, x, wts, tables, frames, dx, dw_parts, db_parts, t, chunks):
    """Chunk ``t`` of the backward pass: ``dx (N, C, H, W)`` of its images and their summed
    ``dw_parts[t] (OC, KH*KW*C)`` (taps in ``(kh, kw, c)`` order) and ``db_parts[t] (OC,)``,
    from ``dy2 (N, OC, OH*OW)``, masked first by a ReLU's output ``mask`` (like ``dy2``)
    unless ``mask`` is empty; no ``dx`` if it is empty. ``wts = (blocks(wf), wt2)`` with
    ``wf (C, OC, KH, KW)`` the flipped weights ``w[oc, c, KH-1-kh, KW-1-kw]`` and ``wt2 (C,
    KH*OC*KW)`` the same in ``(kh, oc, kw)`` order;
    ``tables, xframe, dframe = backward_plan(...)``, ``frames = (xframe, dframe)``."""
    pix, taps, dw_bounds, dx_inner, dx_outer, dx_bounds = tables
    xframe, dframe = frames
    oc_, c_, oh, ow = dy2.shape[1], x.shape[1], dframe[6], dframe[7]
    group, ocb, cb = pix.shape[0] // (oh * ow), (oc_ + LANES - 1) // LANES, wts[0].shape[0]
    xg = np.zeros(group * c_ * xframe[0] * xframe[1], dtype=x.dtype)
    dyt = np.zeros((ocb, pix.shape[0], LANES), dtype=x.dtype)
    dyp = np.zeros(oc_ * dframe[0] * dframe[1] + RUN + dframe[1], dtype=x.dtype)
    dwt = np.empty((ocb * LANES, taps.shape[0]), dtype=x.dtype)
    dyg = np.empty((group if mask.shape[0] else 0, oc_, oh * ow), dtype=x.dtype)
    zero = np.zeros((max(ocb, cb), LANES), dtype=x.dtype)
    db_lanes = np.zeros((ocb, LANES), dtype=x.dtype)
    small = c_ < LANES // 2  # dx through _tile_px
    cols = -(-((x.shape[2] - 1) * dframe[1] + x.shape[3]) // RUN) * RUN
    scratch = np.empty((c_, cols) if small else (cb * LANES, dx_outer.shape[0]), dtype=x.dtype)
    direct = c_ % LANES == 0 and dframe[8] == x.shape[3]
    dx_entries = dx_outer.shape[0]
    dw_t = dw_parts[t]
    dw_t.fill(0)
    start, stop = _span(t, chunks, x.shape[0])
    for g0 in range(start, stop, group):
        gn = min(group, stop - g0)
        src, first = dy2, g0
        if mask.shape[0]:
            _relu_masked(dy2, mask, dyg, g0, gn)
            src, first = dyg, 0
        _dw_group(src, first, x, g0, gn, (xg, dyt), (xframe, oh, ow), db_lanes)
        for i in range(gn if dx.shape[0] else 0):
            n = g0 + i
            _pad_into(src[first + i].reshape((oc_, oh, ow)), dyp, 0, dframe[:6])
            if small:
                _tile_px(dyp, dx_inner, dx_outer[0], wts[1], scratch)
                _crop(scratch, dx[n], dframe[1], 0, scratch.shape[1])
            else:
                out = dx[n].reshape((c_, -1)) if direct else scratch
                _tile_oc(dyp, dx_inner, dx_outer, dx_bounds, wts[0], zero, out, 0, dx_entries)
                if not direct:
                    _crop(scratch, dx[n], dframe[8], 0, dx_entries)
        _tile_oc(xg, pix, taps, dw_bounds, dyt, zero, dwt, 0, taps.shape[0])
        for o in range(oc_):
            for r in range(dw_t.shape[1]):
                dw_t[o, r] += dwt[o, r]
    for o in range(oc_):
        db_parts[t, o] = db_lanes[o // LANES, o % LANES]


def _backward_threads(dy2, mask, x, wts, tables, frames, dx, dw_parts, db_parts, chunks):
    """``_backward``'s chunks on Numba's threads (``chunk_kernel``)."""
    wf, wt2 = wts
    pix, taps, dw_bounds, dx_inner, dx_outer, dx_bounds = tables
    xframe, dframe = frames
    for t in numba.prange(chunks):
        _body(  # noqa: F821
            dy2,
            mask,
            x,
            (wf, wt2),
            (pix, taps, dw_bounds, dx_inner, dx_outer, dx_bounds),
            (xframe, dframe),
            dx,
            dw_parts,
            db_parts,
            t,
            chunks,
        )


@functools.cache
def kernels(pixels: int, lanes: int) -> tuple:
    """``(conv2d_forward, conv2d_backward)``: the chunk kernels of the variant whose register
    tile is ``pixels`` pixels x ``lanes`` channels (``kernels._isa.tile``). Each variant has
    its own qualified names, hence its own cache files: ``_p<pixels>x<lanes>_<hash>``, where
    ``<hash>`` is ``tile_ir.SOURCE_HASH``, so that a change of the tile's code (in another
    file, which Numba's cache does not watch) compiles the kernels afresh."""
    suffix = f"_p{pixels}x{lanes}_{SOURCE_HASH}"

    def variant(fn, **names):
        return renamed(fn, suffix, LANES=lanes, **names)

    tile = helper(variant(_tile_oc, _fma_tile=fma_tile_intrinsic(pixels, lanes), PIXELS=pixels))
    dw_group = helper(variant(_dw_group, _blocks=helper(variant(_blocks))))
    return (
        chunk_kernel(variant(_forward, _tile_oc=tile, PIXELS=pixels), _forward_threads),
        chunk_kernel(variant(_backward, _tile_oc=tile, _dw_group=dw_group), _backward_threads),
    )
