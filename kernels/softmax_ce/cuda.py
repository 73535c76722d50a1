"""numba-cuda kernels for softmax and the fused softmax cross-entropy, on device arrays.

One thread per row (grid-stride over rows): the rows are short (K classes), so a thread
finds the row max, the sum of exponentials and the probabilities alone. The per-row losses
stay on the device; only their float64 mean (one number) comes back to the host.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from kernels import _cuda


@cuda.jit(device=True)
def _softmax_row(x, p, i):
    """Write the softmax of row ``i`` of ``x`` into ``p``; return the row max and the sum
    of exponentials."""
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        if x[i, j] > m:
            m = x[i, j]
    s = p.dtype.type(0)
    for j in range(x.shape[1]):
        e = math.exp(x[i, j] - m)
        p[i, j] = e
        s += e
    for j in range(x.shape[1]):
        p[i, j] = p[i, j] / s
    return m, s


@cuda.jit
def _softmax(x, p):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        _softmax_row(x, p, i)


@cuda.jit
def _softmax_ce(x, labels, p, row_loss):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        m, s = _softmax_row(x, p, i)
        row_loss[i] = math.log(s) - (x[i, labels[i]] - m)


@cuda.jit
def _softmax_ce_backward(p, labels, scale, dx):
    one = dx.dtype.type(1)
    for idx in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        i, j = _cuda.div_rem(idx, p.shape[1])
        dx[i, j] = (p[i, j] - one if j == labels[i] else p[i, j]) * scale


def softmax_forward(x):
    """Row softmax on the device, stable for large logits.

    Parameters
    ----------
    x : device array (N, K), float32 or float64

    Returns
    -------
    device array (N, K), x's dtype; each row sums to 1.
    """
    p = _cuda.empty(x.shape, x.dtype)
    _softmax[_cuda.grid(x.shape[0])](x, p)
    return p


def softmax_ce_forward(logits, labels):
    """Mean softmax cross-entropy on the device (as ``torch.nn.functional.cross_entropy``).

    Parameters
    ----------
    logits : device array (N, K), float32 or float64
    labels : device array (N,), integer (int32 or int64), values in [0, K)

    Returns
    -------
    loss : float
        ``mean_n(-log softmax(logits)[n, labels[n]])``, averaged in float64 on the host.
    probs : device array (N, K), logits' dtype
        The softmax, for :func:`softmax_ce_backward`.
    """
    n = logits.shape[0]
    probs = _cuda.empty(logits.shape, logits.dtype)
    row_loss = _cuda.empty(n, logits.dtype)
    _softmax_ce[_cuda.grid(n)](logits, labels, probs, row_loss)
    return float(np.mean(row_loss.copy_to_host(), dtype=np.float64)), probs


def softmax_ce_backward(probs, labels, dloss=1.0):
    """Gradient of the mean cross-entropy on the device: ``dloss * (probs - onehot) / N``.

    Parameters
    ----------
    probs : device array (N, K), float32 or float64, from :func:`softmax_ce_forward`
    labels : device array (N,), integer, values in [0, K)
    dloss : float
        Upstream gradient of the scalar loss.

    Returns
    -------
    device array ``dlogits`` (N, K), probs' dtype.
    """
    scale = np.dtype(probs.dtype).type(float(dloss) / probs.shape[0])
    dx = _cuda.empty(probs.shape, probs.dtype)
    _softmax_ce_backward[_cuda.grid(probs.size)](probs, labels, scale, dx)
    return dx
