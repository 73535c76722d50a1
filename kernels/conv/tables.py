"""The tables of the convolution's kernels (``kernels.conv.cpu``), built in NumPy once per
shape: input offsets, the ``k`` bounds of each tile, padded pitches, the weights packed in
blocks of lanes, and the per-shape plans ``forward_plan`` and ``backward_plan`` (cached).
docs/kernels-conv.md explains the layouts."""

import functools

import numpy as np

from kernels.conv.tile_ir import OFFSETS

_DW_PIXELS = 1024  # output pixels per ``dw`` tile call (a group of images)


def _offsets(base: int, dims: tuple, multiple: int = 1) -> np.ndarray:
    """uint64 ``base + sum_d i_d * s_d`` over the grid ``dims = ((n0, s0), (n1, s1), ...)``
    (last index fastest), padded with ``base`` to a multiple of ``multiple`` entries."""
    t = np.full(1, base, dtype=np.int64)
    for n, step in dims:
        t = (t[:, None] + step * np.arange(n)).ravel()
    return np.concatenate([t, np.full(-t.size % multiple, base)]).astype(np.uint64)


def _bounds(
    entries: int, per_row: int, rows: int, rule: tuple, unit: int, pixels: int
) -> np.ndarray:
    """``k`` range of each tile of ``_tile_oc``: tile ``t`` holds entries ``[P t, P t + P)``
    (``P = pixels``),
    entry ``j < entries`` is in row ``a = j // per_row``, ``k`` runs over blocks of ``unit``
    values, and block ``b < rows`` is needed by row ``a`` iff ``0 <= a*SA + b*SB + C0 < SIZE``
    for ``rule = (SA, SB, C0, SIZE)``. Returns int64 ``(tiles, 2)``: from the first to the
    last block needed by an entry of the tile, ``(0, 0)`` if none."""
    sa, sb, c0, size = rule
    j = np.arange(-(-entries // pixels) * pixels)
    pos = (j // per_row)[:, None] * sa + np.arange(rows) * sb + c0
    need = (pos >= 0) & (pos < size) & (j < entries)[:, None]
    need = need.reshape(-1, pixels, rows).any(axis=1)
    some = need.any(axis=1)
    lo = np.where(some, need.argmax(axis=1), 0)
    hi = np.where(some, rows - need[:, ::-1].argmax(axis=1), 0)
    return np.stack([lo * unit, hi * unit], axis=1).astype(np.int64)


def _pitch(rows: int, cols: int) -> int:
    """Row pitch of a padded buffer of ``rows x cols`` planes: ``cols``, or ``cols + 1`` when a
    plane would be a multiple of 256 elements (planes 1-4 KiB apart share L1 cache sets)."""
    return cols + 1 if rows * cols % 256 == 0 else cols


def blocks(w: np.ndarray, lanes: int) -> np.ndarray:
    """Weights ``w (O, I, KH, KW)`` as ``(ceil(O/L), KH*I*KW, L)`` for ``L = lanes``, taps in
    ``(kh, i, kw)`` order, ``O`` zero-padded: the ``M`` of ``_tile_oc``. One strided copy (two
    copies took 4x longer, which counts at batch 1)."""
    o, i, kh, kw = w.shape
    ob = -(-o // lanes)
    if o % lanes:
        w = np.concatenate([w, np.zeros((ob * lanes - o, i, kh, kw), w.dtype)])
    packed = w.reshape(ob, lanes, i, kh, kw).transpose(0, 3, 2, 4, 1)
    return np.ascontiguousarray(packed).reshape(ob, kh * i * kw, lanes)


@functools.lru_cache(maxsize=64)
def forward_plan(c: int, h: int, w: int, geom: tuple, pixels: int) -> tuple:
    """``((inner, outer, bounds), (HP, WP, PH, PW, OW, COLS))`` for ``conv2d_forward`` with
    tiles of ``pixels``; ``geom`` is ``(KH, KW, SH, SW, PH, PW, OH, OW)``. The tiles compute
    ``OH`` rows of ``COLS`` outputs: ``OW``, or, for a tile longer than ``OFFSETS`` and
    stride 1, the padded width ``WP``, so that each tile reads consecutive inputs (the
    columns past ``OW`` are computed and dropped). Cached: the arrays must not be
    modified."""
    kh, kw, sh, sw, ph, pw, oh, ow = geom
    hp, wp = h + 2 * ph, _pitch(h + 2 * ph, w + 2 * pw)
    cols = wp if pixels > OFFSETS and sh == sw == 1 else ow
    inner = _offsets(0, ((kh, wp), (c, hp * wp), (kw, 1)))
    outer = _offsets(0, ((oh, sh * wp), (cols, sw)), pixels)
    bounds = _bounds(oh * cols, cols, kh, (sh, 1, -ph, h), c * kw, pixels)
    return (inner, outer, bounds), (hp, wp, ph, pw, ow, cols)


@functools.lru_cache(maxsize=64)
def backward_plan(n: int, c: int, h: int, w: int, oc: int, geom: tuple, pixels: int) -> tuple:
    """``((pix, taps, dw_bounds, dx_inner, dx_outer, dx_bounds), xframe, dframe)`` for
    ``conv2d_backward`` with chunks of at most ``n`` images and tiles of ``pixels``:
    ``xframe = (HP, WP, PH, PW, 1, 1)`` places ``x`` in its padded buffer (channels last,
    for ``dw``: taps in ``(kh, kw, c)`` order, ``C`` consecutive inputs per ``(kh, kw)``),
    ``dframe = (HD, WD, KH-1, KW-1, SH, SW, OH, OW, COLS)`` places ``dy``; the ``dx`` tiles
    compute ``H`` rows of ``COLS`` inputs, ``W`` or, for a tile longer than ``OFFSETS``,
    ``WD`` (as in ``forward_plan``). Cached: the arrays must not be modified."""
    kh, kw, sh, sw, ph, pw, oh, ow = geom
    hp, wp = h + 2 * ph, _pitch(h + 2 * ph, w + 2 * pw)
    hd, wd = hp + kh - 1, _pitch(hp + kh - 1, w + 2 * pw + kw - 1)
    cols = wd if pixels > OFFSETS else w
    group = max(1, min(n, _DW_PIXELS // (oh * ow)))
    group = max(1, -(-n // max(1, -(-n // group))))  # groups evenly filled: the last pads less
    tables = (
        _offsets(0, ((oh, sh * wp * c), (group, c * hp * wp), (ow, sw * c))),
        _offsets(0, ((kh, wp * c), (kw, c), (c, 1)), pixels),
        _bounds(kh * c * kw, c * kw, oh, (1, sh, -ph, h), group * ow, pixels),
        _offsets(0, ((kh, wd), (oc, hd * wd), (kw, 1))),
        _offsets(ph * wd + pw, ((h, wd), (cols, 1)), pixels),
        _bounds(h * cols, cols, kh, (1, 1, ph - kh + 1, (oh - 1) * sh + 1), oc * kw, pixels),
    )
    return tables, (hp, wp, ph, pw, 1, 1), (hd, wd, kh - 1, kw - 1, sh, sw, oh, ow, cols)
