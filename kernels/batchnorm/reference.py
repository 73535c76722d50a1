"""NumPy references for batch normalization (PyTorch semantics): the specification.

``x`` is (N, C) or (N, C, H, W); statistics are per channel over N (and H, W). Everything
is computed in float64 and cast back to ``x``'s dtype.
"""

import numpy as np


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """The axes a channel's statistics reduce over."""
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _bc(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-channel ``v`` (C,) as float64, shaped to broadcast against ``x``."""
    return v.astype(np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def batchnorm_forward_ref(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(y, mean, invstd)``; in training, update the running buffers in place."""
    x64 = x.astype(np.float64)
    if training:
        count = x.size // x.shape[1]
        mean, var = x64.mean(axis=_axes(x)), x64.var(axis=_axes(x))
        unbiased = var * count / (count - 1)
        running_mean[...] = (1 - momentum) * running_mean.astype(np.float64) + momentum * mean
        running_var[...] = (1 - momentum) * running_var.astype(np.float64) + momentum * unbiased
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    invstd = 1 / np.sqrt(var + eps)
    y = (x64 - _bc(mean, x)) * _bc(invstd, x) * _bc(gamma, x) + _bc(beta, x)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batchnorm_backward_ref(
    dy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    *,
    training: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(dx, dgamma, dbeta)``; in eval mode ``mean`` and ``invstd`` are constants."""
    dy64 = dy.astype(np.float64)
    xhat = (x.astype(np.float64) - _bc(mean, x)) * _bc(invstd, x)
    dbeta = dy64.sum(axis=_axes(x))
    dgamma = (dy64 * xhat).sum(axis=_axes(x))
    dxhat = dy64
    if training:
        count = x.size // x.shape[1]
        dxhat = dy64 - (_bc(dbeta, x) + xhat * _bc(dgamma, x)) / count
    dx = dxhat * _bc(gamma, x) * _bc(invstd, x)
    return dx.astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)
