"""Inverted dropout (PyTorch semantics): kept values are scaled by ``1 / (1 - p)``.

The mask is drawn in Python from the caller's ``numpy.random.Generator``, so the same
seed gives the same mask. The train/eval switch lives in the layer, not here.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.dropout import cpu

ANY = "(N, ...)"


def _scale(op: str, p: float, dtype: np.dtype) -> np.generic:
    """Check ``p`` in [0, 1]; return ``1 / (1 - p)`` in ``dtype`` (0 when ``p == 1``)."""
    value = float(p)
    if not 0 <= value <= 1:
        raise ValueError(f"{op}: p must be in [0, 1], got {p!r}")
    return dtype.type(0 if value == 1 else 1 / (1 - value))


def _apply(x: np.ndarray, mask: np.ndarray, scale: np.generic, parallel: bool) -> np.ndarray:
    y = np.empty_like(x)
    cpu.masked_scale(x.reshape(-1), mask.reshape(-1), scale, y.reshape(-1), parallel=parallel)
    return y


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator, *, parallel: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Zero each element with probability ``p`` and scale the kept ones by ``1 / (1 - p)``.

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape
    p : float in [0, 1]
        Drop probability; ``p == 1`` multiplies everything by 0 (NaN stays NaN, as in
        PyTorch), ``p == 0`` returns a copy of ``x``.
    rng : numpy.random.Generator
        Source of the mask: ``rng.random(x.shape, dtype=x.dtype) >= p``.
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    y : ndarray, same shape and dtype as ``x``
    mask : ndarray of bool, same shape as ``x``; True where kept.
    """
    op = "dropout_forward"
    x = _checks.float_array(op, "x", x, ANY)
    scale = _scale(op, p, x.dtype)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{op}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if impl := _checks.cuda_impl(op, "dropout", x=x):
        return impl.dropout_forward(x, p, rng)
    mask = rng.random(x.shape, dtype=x.dtype) >= p
    return _apply(x, mask, scale, parallel), mask


def dropout_backward(
    dy: np.ndarray, mask: np.ndarray, p: float, *, parallel: bool = True
) -> np.ndarray:
    """Gradient of dropout: ``dx = dy * mask / (1 - p)`` (zeros when ``p == 1``).

    Parameters
    ----------
    dy : ndarray, float32 or float64, upstream gradient, same shape as ``mask``
    mask : ndarray of bool, from ``dropout_forward``
    p : float in [0, 1], the forward's drop probability
    parallel : bool
        Use the multi-threaded variant.

    Returns
    -------
    ndarray ``dx``, same shape and dtype as ``dy``.
    """
    op = "dropout_backward"
    dy = _checks.float_array(op, "dy", dy, ANY)
    scale = _scale(op, p, dy.dtype)
    array = _checks.is_device(mask) or isinstance(mask, np.ndarray)
    if not array or mask.dtype != np.bool_:
        given = getattr(mask, "dtype", type(mask).__name__)
        raise ValueError(f"{op}: mask must be a bool numpy array dy.shape, got {given}")
    _checks.shape_is(op, "mask", mask, dy.shape, "dy.shape")
    if impl := _checks.cuda_impl(op, "dropout", dy=dy, mask=mask):
        return impl.dropout_backward(dy, _checks.device_contiguous(op, "mask", mask), p)
    return _apply(dy, np.ascontiguousarray(mask), scale, parallel)
