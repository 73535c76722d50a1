"""Batch normalization (PyTorch's BatchNorm1d/BatchNorm2d semantics), forward and backward.

``x`` is (N, C) or (N, C, H, W); statistics are per channel over N (and H, W). The
training forward updates the running buffers in place: they are the layer's state, the
one documented exception to "kernels never mutate their inputs".
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.batchnorm import cpu

NDIMS = (2, 4)
BOTH = "(N, C) or (N, C, H, W)"


def _as_ncl(op: str, name: str, x: np.ndarray) -> np.ndarray:
    """Return ``x`` (N, C) or (N, C, H, W) as a C-contiguous (N, C, L) view."""
    x = _checks.float_array(op, name, x, "(N, ...)")
    if x.ndim not in NDIMS:
        raise ValueError(f"{op}: {name} must have shape {BOTH}, got shape {x.shape}")
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(op: str, x: np.ndarray, **vectors: np.ndarray) -> list[np.ndarray]:
    """Check each vector is (C,) in x's dtype; return them C-contiguous."""
    out = {name: _checks.float_array(op, name, v, "(C,)") for name, v in vectors.items()}
    for name, v in out.items():
        _checks.shape_is(op, name, v, (x.shape[1],), "(C,)")
    _checks.same_dtype(op, x=x, **out)
    return list(out.values())


def _batch_stats(x3: np.ndarray, parallel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Batch mean and biased variance per channel, float64 (C,)."""
    mean = np.empty(x3.shape[1], dtype=np.float64)
    var = np.empty_like(mean)
    cpu.batchnorm_stats(x3, mean, var, parallel=parallel)
    return mean, var


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalize per channel, then scale by ``gamma`` and shift by ``beta``.

    Parameters
    ----------
    x : ndarray (N, C) or (N, C, H, W), float32 or float64
    gamma, beta : ndarray (C,), x's dtype
    running_mean, running_var : ndarray (C,), x's dtype
        Updated in place when ``training``:
        ``running = (1 - momentum) * running + momentum * batch_stat``, with the
        unbiased batch variance (``count / (count - 1)``, ``count = N * H * W``).
    training : bool
        Normalize with the batch mean and biased variance (True) or with the running
        statistics (False, buffers untouched).
    momentum : float
    eps : float
        Added to the variance before the square root.
    parallel : bool
        Use the multi-threaded variant (channels split across threads).

    Returns
    -------
    y : ndarray, same shape and dtype as ``x``
    mean, invstd : ndarray (C,), x's dtype
        The mean and ``1 / sqrt(var + eps)`` used, for ``batchnorm_backward``.
    """
    op = "batchnorm_forward"
    x3 = _as_ncl(op, "x", x)
    gamma, beta, rm, rv = _per_channel(
        op, x3, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var
    )
    momentum = _checks.positive_float(op, "momentum", momentum)
    eps = _checks.positive_float(op, "eps", eps)
    if training:
        count = x3.shape[0] * x3.shape[2]
        if count <= 1:
            raise ValueError(
                f"{op}: Expected more than 1 value per channel when training, got input "
                f"of shape {x.shape}"
            )
    arrays = dict(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv)
    if impl := _checks.cuda_impl(op, "batchnorm", **arrays):
        return impl.batchnorm_forward(
            x, gamma, beta, rm, rv, training=training, momentum=momentum, eps=eps
        )
    if training:
        mean, var = _batch_stats(x3, parallel)
        unbiased = var * count / (count - 1)
        running_mean[...] = (1 - momentum) * rm.astype(np.float64) + momentum * mean
        running_var[...] = (1 - momentum) * rv.astype(np.float64) + momentum * unbiased
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    mean, invstd = mean.astype(x3.dtype), (1 / np.sqrt(var + eps)).astype(x3.dtype)
    y = np.empty_like(x3)
    cpu.batchnorm_normalize(x3, gamma, beta, mean, invstd, y, parallel=parallel)
    return y.reshape(x.shape), mean, invstd


def batchnorm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    *,
    training: bool,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of batch normalization.

    Parameters
    ----------
    dy : ndarray, upstream gradient, same shape and dtype as ``x``
    x : ndarray (N, C) or (N, C, H, W), float32 or float64, the forward input
    gamma, mean, invstd : ndarray (C,), x's dtype
        ``mean`` and ``invstd`` as returned by ``batchnorm_forward``.
    training : bool
        True: the batch statistics depend on ``x`` (full gradient). False: they are
        constants, ``dx = dy * gamma * invstd``.
    parallel : bool
        Use the multi-threaded variant (channels split across threads).

    Returns
    -------
    dx : ndarray, same shape and dtype as ``x``
    dgamma, dbeta : ndarray (C,), x's dtype
    """
    op = "batchnorm_backward"
    x3 = _as_ncl(op, "x", x)
    dy3 = _as_ncl(op, "dy", dy)
    _checks.shape_is(op, "dy", dy, x.shape, "x.shape")
    _checks.same_dtype(op, dy=dy3, x=x3)
    gamma, mean, invstd = _per_channel(op, x3, gamma=gamma, mean=mean, invstd=invstd)
    arrays = dict(dy=dy, x=x, gamma=gamma, mean=mean, invstd=invstd)
    if impl := _checks.cuda_impl(op, "batchnorm", **arrays):
        return impl.batchnorm_backward(dy, x, gamma, mean, invstd, training=training)
    dx = np.empty_like(x3)
    dgamma = np.empty(x3.shape[1], dtype=x3.dtype)
    dbeta = np.empty_like(dgamma)
    cpu.batchnorm_backward(
        dy3, x3, gamma, mean, invstd, bool(training), dx, dgamma, dbeta, parallel=parallel
    )
    return dx.reshape(x.shape), dgamma, dbeta
