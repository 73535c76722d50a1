"""numba-cuda kernels for batch normalization (PyTorch semantics), on device arrays.

``x`` (N, C) or (N, C, H, W) is viewed as (N, C, L). Per-channel statistics: one block
per channel, each thread accumulates a strided share in float64 (as the CPU kernels do),
then a shared-memory tree reduction (``kernels._cuda.block_sum``); two passes (mean,
then centered squares). The element-wise parts (normalize, ``dx``) run one thread per
element in x's dtype. The training forward updates the running buffers in place.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from kernels import _cuda


@cuda.jit(device=True)
def _moment(buf, x, c, shift, square):
    """Sum over channel ``c`` (the whole block) of ``x - shift``, or of its square, in float64."""
    n, _, length = x.shape
    s = 0.0
    for r in range(cuda.threadIdx.x, n * length, cuda.blockDim.x):
        i, j = _cuda.div_rem(r, length)
        d = x[i, c, j] - shift
        s += d * d if square else d
    return _cuda.block_sum(buf, s)


@cuda.jit
def _stats(x, running_mean, running_var, momentum, eps, mean, invstd):
    """Batch mean and ``1 / sqrt(var + eps)`` per channel; running buffers updated."""
    buf = cuda.shared.array(0, dtype=float64)
    n, channels, length = x.shape
    count = n * length
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        m = _moment(buf, x, c, 0.0, False) / count
        var = _moment(buf, x, c, m, True) / count
        if cuda.threadIdx.x == 0:
            unbiased = var * count / (count - 1)
            rm, rv = float(running_mean[c]), float(running_var[c])
            running_mean[c] = (1.0 - momentum) * rm + momentum * m
            running_var[c] = (1.0 - momentum) * rv + momentum * unbiased
            mean[c] = m
            invstd[c] = 1.0 / math.sqrt(var + eps)


@cuda.jit
def _eval_stats(running_mean, running_var, eps, mean, invstd):
    for c in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        mean[c] = running_mean[c]
        invstd[c] = 1.0 / math.sqrt(float(running_var[c]) + eps)


@cuda.jit
def _normalize(x, gamma, beta, mean, invstd, y):
    """``y = (x - mean) * (gamma * invstd) + beta`` per channel, in x's dtype."""
    _, channels, length = x.shape
    for r in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, k = _cuda.div_rem(r, channels * length)
        c, j = _cuda.div_rem(k, length)
        y[i, c, j] = (x[i, c, j] - mean[c]) * (gamma[c] * invstd[c]) + beta[c]


@cuda.jit
def _backward_sums(dy, x, mean, invstd, training, dgamma, dbeta, coef):
    """dbeta = sum(dy), dgamma = sum(dy * xhat) per channel (float64 sums); ``coef`` (2, C)
    gets their means over the channel (zeros in eval mode), for ``_backward_dx``."""
    buf = cuda.shared.array(0, dtype=float64)
    n, channels, length = x.shape
    count = n * length
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        m, s = mean[c], invstd[c]
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for r in range(cuda.threadIdx.x, count, cuda.blockDim.x):
            i, j = _cuda.div_rem(r, length)
            sum_dy += dy[i, c, j]
            sum_dy_xhat += dy[i, c, j] * ((x[i, c, j] - m) * s)
        sum_dy = _cuda.block_sum(buf, sum_dy)
        sum_dy_xhat = _cuda.block_sum(buf, sum_dy_xhat)
        if cuda.threadIdx.x == 0:
            dbeta[c] = sum_dy
            dgamma[c] = sum_dy_xhat
            coef[0, c] = sum_dy / count if training else 0.0
            coef[1, c] = sum_dy_xhat / count if training else 0.0


@cuda.jit
def _backward_dx(dy, x, gamma, mean, invstd, coef, dx):
    """``dx = gamma * invstd * (dy - a - xhat * b)`` with ``(a, b) = coef[:, c]``."""
    _, channels, length = x.shape
    for r in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, k = _cuda.div_rem(r, channels * length)
        c, j = _cuda.div_rem(k, length)
        s = invstd[c]
        xhat_b = (x[i, c, j] - mean[c]) * s * coef[1, c]
        dx[i, c, j] = gamma[c] * s * (dy[i, c, j] - coef[0, c] - xhat_b)


def _ncl(x):
    """View (N, C) or (N, C, H, W) as (N, C, L)."""
    return x.reshape(x.shape[0], x.shape[1], x.size // (x.shape[0] * x.shape[1]))


def batchnorm_forward(
    x, gamma, beta, running_mean, running_var, *, training, momentum=0.1, eps=1e-5
):
    """Normalize per channel, then scale by ``gamma`` and shift by ``beta``, on the device.

    Parameters
    ----------
    x : device array (N, C) or (N, C, H, W), float32 or float64
    gamma, beta : device arrays (C,), x's dtype
    running_mean, running_var : device arrays (C,), x's dtype
        Updated in place when ``training``:
        ``running = (1 - momentum) * running + momentum * batch_stat`` (float64 math), with
        the unbiased batch variance (``count / (count - 1)``, ``count = N * H * W > 1``).
    training : bool
        Batch statistics (True) or the running ones (False, buffers untouched).
    momentum, eps : float

    Returns
    -------
    y : device array, x's shape and dtype
    mean, invstd : device arrays (C,), x's dtype
        The mean and ``1 / sqrt(var + eps)`` used, for :func:`batchnorm_backward`.
    """
    x3 = _ncl(x)
    channels = x3.shape[1]
    mean = _cuda.empty(channels, x.dtype)
    invstd = _cuda.empty(channels, x.dtype)
    if training:
        launch = _cuda.reduce_launch(channels, np.float64)
        _stats[launch](x3, running_mean, running_var, float(momentum), float(eps), mean, invstd)
    else:
        _eval_stats[_cuda.grid(channels)](running_mean, running_var, float(eps), mean, invstd)
    y = _cuda.empty(x3.shape, x.dtype)
    _normalize[_cuda.grid(y.size)](x3, gamma, beta, mean, invstd, y)
    return y.reshape(*x.shape), mean, invstd


def batchnorm_backward(dy, x, gamma, mean, invstd, *, training):
    """Gradients of batch normalization on the device.

    Parameters
    ----------
    dy : device array, upstream gradient, x's shape and dtype
    x : device array (N, C) or (N, C, H, W), float32 or float64, the forward input
    gamma, mean, invstd : device arrays (C,), x's dtype
        ``mean`` and ``invstd`` as returned by :func:`batchnorm_forward`.
    training : bool
        True: the batch statistics depend on ``x`` (full gradient). False: constants,
        ``dx = dy * gamma * invstd``.

    Returns
    -------
    dx : device array, x's shape and dtype
    dgamma, dbeta : device arrays (C,), x's dtype
    """
    x3, dy3 = _ncl(x), _ncl(dy)
    channels = x3.shape[1]
    dgamma = _cuda.empty(channels, x.dtype)
    dbeta = _cuda.empty(channels, x.dtype)
    coef = _cuda.empty((2, channels), x.dtype)
    launch = _cuda.reduce_launch(channels, np.float64)
    _backward_sums[launch](dy3, x3, mean, invstd, bool(training), dgamma, dbeta, coef)
    dx = _cuda.empty(x3.shape, x.dtype)
    _backward_dx[_cuda.grid(dx.size)](dy3, x3, gamma, mean, invstd, coef, dx)
    return dx.reshape(*x.shape), dgamma, dbeta
