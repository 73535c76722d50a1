"""Numba kernels for 2-D convolution: per-image im2col + ``np.dot`` (SciPy's BLAS).

Layout: each image's receptive fields are copied into ``col (C*KH*KW, OH*OW)``, so the
forward product ``w2 @ col`` (``w2 = w.reshape(OC, -1)``) lands directly in NCHW order
``(OC, OH*OW)``. Backward per image: ``dw += dy_n @ col.T``, ``db += dy_n.sum(1)`` and
``dcol = w2.T @ dy_n``, scattered back into ``dx`` with col2im. ``col`` is allocated and
zeroed once per chunk and reused for all its images: padded entries stay zero because
only in-bounds entries are rewritten.

Threads: the batch is split into ``T = min(threads, N)`` contiguous chunks (``T = 1`` for
the serial variant), one per ``prange`` iteration. A chunk owns its buffers, its images'
slices of ``y``/``dx`` and its partial ``dw``/``db`` rows, summed in a fixed order after the
loop, so nothing races. The BLAS is called from inside ``prange``, so the wrappers pin
OpenBLAS to one thread for the call (``one_blas_thread``): unpinned, its threads nested
inside Numba's and the 16->16 28x28 layer ran 5-10x slower. Only Numba's ``np.dot`` is
used on this path (never NumPy's ``@``, a second OpenBLAS).

Why BLAS and not a direct loop nest: this is GEMM-bound. On the 2-core dev VM one-thread
sgemm of the conv shapes reaches 9-12 GFLOP/s, and batch 100 of the 16->16 28x28 layer
(float32) took fwd 40 / bwd 83 ms serial, 22 / 47 ms parallel, vs 144 / 279 ms for the
NumPy reference.
"""

import contextlib
import ctypes
import functools
from collections.abc import Iterator

import numpy as np
from numba import prange

from kernels._jit import helper, kernel


@functools.cache
def _openblas() -> tuple:
    """``(get_num_threads, set_num_threads)`` pairs of each OpenBLAS with the 32-bit-int API
    loaded in this process (the one SciPy, hence Numba's ``np.dot``, calls); Linux only,
    empty elsewhere."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)

    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return ()
    found = []
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            if hasattr(lib, prefix + "_set_num_threads"):
                found.append((lib[prefix + "_get_num_threads"], lib[prefix + "_set_num_threads"]))
                break
    return tuple(found)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with OpenBLAS pinned to one thread, then restore its thread count.

    The kernels call ``np.dot`` from inside ``prange``; a multi-threaded OpenBLAS would nest
    its threads inside Numba's (measured 5-10x slower here, even for the serial variant).
    """
    libs = _openblas()
    old = [get() for get, _ in libs]
    for _, set_threads in libs:
        set_threads(1)
    try:
        yield
    finally:
        for (_, set_threads), n in zip(libs, old, strict=True):
            set_threads(n)


@helper
def _valid(offset, stride, size, n):
    """Range ``[lo, hi)`` of outputs ``i < n`` whose input ``i*stride + offset`` is in
    ``[0, size)``."""
    lo = max(0, (stride - 1 - offset) // stride)
    hi = min(n, max(lo, (size - offset + stride - 1) // stride))
    return lo, hi


@helper
def _im2col(img, col, geom):
    """Copy the in-bounds receptive-field entries of ``img (C, H, W)`` into ``col``."""
    kh_, kw_, sh, sw, ph, pw, oh_, ow_ = geom
    c_, h, w = img.shape
    for c in range(c_):
        for kh in range(kh_):
            oh_lo, oh_hi = _valid(kh - ph, sh, h, oh_)
            for kw in range(kw_):
                ow_lo, ow_hi = _valid(kw - pw, sw, w, ow_)
                row = (c * kh_ + kh) * kw_ + kw
                for oh in range(oh_lo, oh_hi):
                    ih, base = oh * sh + kh - ph, oh * ow_
                    for ow in range(ow_lo, ow_hi):
                        col[row, base + ow] = img[c, ih, ow * sw + kw - pw]


@helper
def _col2im(col, img, geom):
    """Add each in-bounds entry of ``col`` to its pixel of ``img (C, H, W)`` (adjoint of
    ``_im2col``)."""
    kh_, kw_, sh, sw, ph, pw, oh_, ow_ = geom
    c_, h, w = img.shape
    for c in range(c_):
        for kh in range(kh_):
            oh_lo, oh_hi = _valid(kh - ph, sh, h, oh_)
            for kw in range(kw_):
                ow_lo, ow_hi = _valid(kw - pw, sw, w, ow_)
                row = (c * kh_ + kh) * kw_ + kw
                for oh in range(oh_lo, oh_hi):
                    ih, base = oh * sh + kh - ph, oh * ow_
                    for ow in range(ow_lo, ow_hi):
                        img[c, ih, ow * sw + kw - pw] += col[row, base + ow]


@helper
def _span(t, chunks, n):
    """Images ``[start, stop)`` of chunk ``t``."""
    return t * n // chunks, (t + 1) * n // chunks


@helper
def _forward_images(x, w2, b, y2, geom, start, stop):
    """Forward for images ``[start, stop)`` with one ``col`` buffer."""
    col = np.zeros((w2.shape[1], y2.shape[2]), dtype=x.dtype)
    for n in range(start, stop):
        _im2col(x[n], col, geom)
        np.dot(w2, col, y2[n])
        for o in range(y2.shape[1]):
            for p in range(y2.shape[2]):
                y2[n, o, p] += b[o]


@helper
def _backward_images(dy2, x, w2, dx, dw2, db, geom, start, stop):
    """``dx`` of images ``[start, stop)``; their summed ``dw2`` and ``db`` (overwritten)."""
    col = np.zeros((w2.shape[1], dy2.shape[2]), dtype=x.dtype)
    dcol = np.empty((w2.shape[1], dy2.shape[2]), dtype=x.dtype)
    dw_n = np.empty(w2.shape, dtype=x.dtype)
    zero = db.dtype.type(0)
    for o in range(dw2.shape[0]):
        db[o] = zero
        for k in range(dw2.shape[1]):
            dw2[o, k] = zero
    for n in range(start, stop):
        _im2col(x[n], col, geom)
        np.dot(dy2[n], col.T, dw_n)
        np.dot(w2.T, dy2[n], dcol)
        _col2im(dcol, dx[n], geom)
        for o in range(dw2.shape[0]):
            for k in range(dw2.shape[1]):
                dw2[o, k] += dw_n[o, k]
            for p in range(dy2.shape[2]):
                db[o] += dy2[n, o, p]


@helper
def _sum_parts(parts, out):
    """``out = parts.sum(axis=0)`` for ``parts (T, M)``, in a fixed order."""
    for m in range(out.shape[0]):
        out[m] = parts[0, m]
        for t in range(1, parts.shape[0]):
            out[m] += parts[t, m]


@kernel
def conv2d_forward(x, w2, b, y2, geom, chunks):
    """``y2 (N, OC, OH*OW) = w2 (OC, C*KH*KW) @ im2col(x[n]) + b`` for each image."""
    for t in prange(chunks):
        start, stop = _span(t, chunks, x.shape[0])
        _forward_images(x, w2, b, y2, geom, start, stop)


@kernel
def conv2d_backward(dy2, x, w2, dx, dw2, db, geom, chunks):
    """Fill ``dx`` (zeroed by the caller), ``dw2 (OC, C*KH*KW)`` and ``db (OC,)``."""
    oc_, ckk = w2.shape
    dw_parts = np.empty((chunks, oc_ * ckk), dtype=x.dtype)
    db_parts = np.empty((chunks, oc_), dtype=x.dtype)
    for t in prange(chunks):
        start, stop = _span(t, chunks, x.shape[0])
        dw_t = dw_parts[t].reshape((oc_, ckk))
        _backward_images(dy2, x, w2, dx, dw_t, db_parts[t], geom, start, stop)
    _sum_parts(dw_parts, dw2.reshape(oc_ * ckk))
    _sum_parts(db_parts, db)
