"""Shared pieces of the numba-cuda kernels (``kernels/<family>/cuda.py``).

Every CUDA kernel function takes numba CUDA device arrays (C-contiguous, float32 or
float64) and returns newly allocated device arrays in the input dtype; inputs are never
modified (except the documented in-place state: optimizer updates, batchnorm running
buffers). Validation is the CPU wrappers' job: these functions assume valid inputs.

Launch sizes are module attributes read at every launch, so tests can shrink them
(``monkeypatch.setattr(_cuda, "BLOCK", 16)``) to run several blocks, grid-stride loops and
partial last blocks on tiny inputs. Kernels whose shared memory has a compile-time shape
(the matrix-product tiles) are built by factories cached on that size.

Import this module (and the ``cuda.py`` files) lazily: numba-cuda is an optional
dependency. Without a GPU, set ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported to run
everything in Numba's CUDA simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np
from numba import cuda

BLOCK = 256  # threads per block of 1-D kernels (element-wise, one thread per row/output)
MAX_BLOCKS = 8192  # cap on each grid dimension; kernels loop grid-stride over the rest
TILE = 16  # matrix-product tiles: TILE x TILE threads, two TILE x TILE shared arrays
REDUCE = 256  # threads per block of the per-channel tree reductions (a power of two)
SPLIT = 4096  # reduction length one block covers in split-K products (weight gradients)
MAX_SPLITS = 64  # cap on the number of split-K partial products


def is_device_array(a: object) -> bool:
    """True for a numba CUDA device array (also the simulator's)."""
    return cuda.devicearray.is_cuda_ndarray(a)


def to_device(a: np.ndarray):
    """Copy a host array to the device as a C-contiguous device array."""
    return cuda.to_device(np.ascontiguousarray(a))


def empty(shape: tuple[int, ...], dtype: np.dtype):
    """Uninitialized device array."""
    return cuda.device_array(shape, dtype=dtype)


def flat(a):
    """1-D view of a C-contiguous device array (a 0-d array gives shape (1,))."""
    return a.reshape(a.size)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """``v`` as an int pair: an int ``k`` means ``(k, k)``."""
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def grid(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items."""
    return max(1, min(MAX_BLOCKS, math.ceil(n / BLOCK))), BLOCK


def reduce_launch(groups: int, dtype: np.dtype) -> tuple[int, int, int, int]:
    """(blocks, threads, stream, shared bytes) for one block per group, tree reduction."""
    return min(groups, MAX_BLOCKS), REDUCE, 0, REDUCE * np.dtype(dtype).itemsize


@cuda.jit(device=True)
def div_rem(r, length):
    """``divmod(r, length)`` for ints, ``length > 0`` (floor division, one division)."""
    q = r // length
    return q, r - q * length


@cuda.jit(device=True)
def block_sum(buf, value):
    """Sum ``value`` over the threads of the block (``blockDim.x`` a power of two) by a
    shared-memory tree reduction in ``buf`` (at least ``blockDim.x`` long); every thread
    gets the total. All threads of the block must call it."""
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            buf[t] += buf[t + half]
        cuda.syncthreads()
        half //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit
def _channel_sum(a, out):
    buf = cuda.shared.array(0, dtype=out.dtype)
    n, channels, length = a.shape
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        s = out.dtype.type(0)
        for r in range(cuda.threadIdx.x, n * length, cuda.blockDim.x):
            i, j = div_rem(r, length)
            s += a[i, c, j]
        total = block_sum(buf, s)
        if cuda.threadIdx.x == 0:
            out[c] = total


def channel_sum(a3):
    """Per-channel sums of ``a3`` (N, C, L) -> (C,), in its dtype (one block per channel)."""
    out = empty(a3.shape[1], a3.dtype)
    _channel_sum[reduce_launch(a3.shape[1], a3.dtype)](a3, out)
    return out


@cuda.jit
def _sum_splits(partial, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        s = partial[0, i]
        for z in range(1, partial.shape[0]):
            s += partial[z, i]
        out[i] = s


@cuda.jit
def _fill(a, value):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = value


def full(shape: tuple[int, ...], dtype: np.dtype, value: float):
    """Device array filled with ``value`` (filled on the device, no host transfer)."""
    out = empty(shape, dtype)
    if out.size:
        _fill[grid(out.size)](flat(out), np.dtype(dtype).type(value))
    return out


def zeros(shape: tuple[int, ...], dtype: np.dtype):
    """Device array of zeros (filled on the device, no host transfer)."""
    return full(shape, dtype, 0)


# ---- tiled matrix products --------------------------------------------------------------
# ``C[m, n] = sum_k A(m, k) * B(k, n)`` where A and B are read through device functions
# ``load(array, geom, row, col)`` (a plain matrix, a transposed one, or an implicit im2col
# view of a convolution input) and the result is written by ``store(out, extra, geom, z,
# m, n, acc)``. ``geom`` is a tuple of ints the loaders may use; ``extra`` is a bias or a
# 0-size array. Split-K: block ``z`` of the grid's third dimension sums ``k`` in its own
# chunk and stores into ``out[z]``; ``split_product`` then adds the chunks in order (no
# atomics).


@cuda.jit(device=True)
def load_rows(a, geom, i, j):
    """Element (i, j) of the matrix ``a``."""
    return a[i, j]


@cuda.jit(device=True)
def load_cols(a, geom, i, j):
    """Element (i, j) of ``a.T``."""
    return a[j, i]


@cuda.jit(device=True)
def store_plain(out, extra, geom, z, i, j, acc):
    """``out[i, j] = acc``."""
    out[i, j] = acc


@cuda.jit(device=True)
def store_bias(out, extra, geom, z, i, j, acc):
    """``out[i, j] = acc + extra[j]`` (``extra``: the bias)."""
    out[i, j] = acc + extra[j]


@cuda.jit(device=True)
def store_split(out, extra, geom, z, i, j, acc):
    """``out[z, i, j] = acc``: the partial product of split-K chunk ``z``."""
    out[z, i, j] = acc


def tiled_product(load_a: Callable, load_b: Callable, store: Callable) -> Callable:
    """Build ``launch(a, b, out, extra, geom, shape, splits=1)`` for the product described
    above, ``shape = (M, N, K)``, on TILE x TILE thread blocks with two TILE x TILE
    shared-memory tiles (grid-stride over output tiles beyond ``MAX_BLOCKS``)."""

    @cache
    def build(tile: int):
        @cuda.jit
        def product(a, b, out, extra, geom, m_total, n_total, k_total, k_chunk):
            sa = cuda.shared.array((tile, tile), dtype=out.dtype)
            sb = cuda.shared.array((tile, tile), dtype=out.dtype)
            tx, ty, z = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockIdx.z
            zero = out.dtype.type(0)
            k_begin = z * k_chunk
            k_end = min(k_total, k_begin + k_chunk)
            for m0 in range(cuda.blockIdx.y * tile, m_total, cuda.gridDim.y * tile):
                m = m0 + ty
                for n0 in range(cuda.blockIdx.x * tile, n_total, cuda.gridDim.x * tile):
                    n = n0 + tx
                    acc = zero
                    for k0 in range(k_begin, k_end, tile):
                        ka, kb = k0 + tx, k0 + ty
                        ok_a = m < m_total and ka < k_end
                        ok_b = n < n_total and kb < k_end
                        sa[ty, tx] = load_a(a, geom, m, ka) if ok_a else zero
                        sb[ty, tx] = load_b(b, geom, kb, n) if ok_b else zero
                        cuda.syncthreads()
                        for kk in range(tile):
                            acc += sa[ty, kk] * sb[kk, tx]
                        cuda.syncthreads()
                    if m < m_total and n < n_total:
                        store(out, extra, geom, z, m, n, acc)

        return product

    def launch(a, b, out, extra, geom, shape, splits=1):
        m_total, n_total, k_total = shape
        tile = TILE
        k_chunk = math.ceil(math.ceil(k_total / splits) / tile) * tile
        blocks = (
            min(MAX_BLOCKS, math.ceil(n_total / tile)),
            min(MAX_BLOCKS, math.ceil(m_total / tile)),
            splits,
        )
        build(tile)[blocks, (tile, tile)](a, b, out, extra, geom, *shape, k_chunk)

    return launch


def split_count(k_total: int) -> int:
    """Number of split-K chunks for a reduction of length ``k_total``: chunks of about
    ``SPLIT`` (longer when capped by ``MAX_SPLITS``), a multiple of ``TILE``, none empty."""
    splits = max(1, min(MAX_SPLITS, math.ceil(k_total / SPLIT)))
    k_chunk = math.ceil(math.ceil(k_total / splits) / TILE) * TILE
    return math.ceil(k_total / k_chunk)


def split_product(launch: Callable, a, b, geom, shape, dtype: np.dtype):
    """Run ``launch`` (a ``tiled_product`` storing with ``store_split``) as a split-K
    product and return the (M, N) sum of its chunks."""
    m_total, n_total, k_total = shape
    splits = split_count(k_total)
    partial = empty((splits, m_total, n_total), dtype)
    launch(a, b, partial, partial, geom, shape, splits)
    out = empty((m_total, n_total), dtype)
    _sum_splits[grid(out.size)](partial.reshape(splits, m_total * n_total), flat(out))
    return out
