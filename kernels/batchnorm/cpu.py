"""Numba kernels for batch normalization on x viewed as (N, C, L), L = H * W (1 for 1d).

Each prange iteration owns one whole channel, so no two threads write the same output.
Per-channel sums are accumulated in float64 (two passes: mean, then centered squares).
"""

from numba import prange

from kernels._jit import kernel


@kernel
def batchnorm_stats(x, mean, var):
    """Batch mean and biased variance per channel, into float64 ``mean`` and ``var`` (C,)."""
    n, c_total, length = x.shape
    count = n * length
    for c in prange(c_total):
        s = 0.0
        for i in range(n):
            for j in range(length):
                s += x[i, c, j]
        m = s / count
        q = 0.0
        for i in range(n):
            for j in range(length):
                d = x[i, c, j] - m
                q += d * d
        mean[c] = m
        var[c] = q / count


@kernel
def batchnorm_normalize(x, gamma, beta, mean, invstd, y):
    """``y = (x - mean) * (gamma * invstd) + beta`` per channel, in x's dtype."""
    n, c_total, length = x.shape
    for c in prange(c_total):
        m, a, b = mean[c], gamma[c] * invstd[c], beta[c]
        for i in range(n):
            for j in range(length):
                y[i, c, j] = (x[i, c, j] - m) * a + b


@kernel
def batchnorm_backward(dy, x, gamma, mean, invstd, training, dx, dgamma, dbeta):
    """Per-channel dgamma, dbeta (float64 sums) and dx; in eval mode dx = dy * gamma * invstd."""
    n, c_total, length = x.shape
    count = n * length
    for c in prange(c_total):
        m, s = mean[c], invstd[c]
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for i in range(n):
            for j in range(length):
                sum_dy += dy[i, c, j]
                sum_dy_xhat += dy[i, c, j] * ((x[i, c, j] - m) * s)
        dbeta[c] = sum_dy
        dgamma[c] = sum_dy_xhat
        k = gamma[c] * s
        a = dx.dtype.type(sum_dy / count if training else 0.0)
        b = dx.dtype.type(sum_dy_xhat / count if training else 0.0)
        for i in range(n):
            for j in range(length):
                dx[i, c, j] = k * (dy[i, c, j] - a - (x[i, c, j] - m) * s * b)
