"""Weight initialisation, as in the book (chapter 6.2).

Each function returns a new array drawn from ``rng``; the caller says what ``fan_in`` is,
because it depends on the layout (Conv2d: ``C * KH * KW``; the book's Affine weight
``(in, out)``: ``in``).
"""

from __future__ import annotations

import numpy as np


def normal(
    shape: tuple[int, ...],
    std: float,
    rng: np.random.Generator,
    dtype: type | np.dtype = np.float32,
) -> np.ndarray:
    """Draw from N(0, std^2).

    Parameters
    ----------
    shape : tuple of int
    std : float
        Standard deviation, > 0.
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``shape`` and ``dtype``.
    """
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"init.normal: std must be a finite number > 0, got {std!r}")
    return (std * rng.standard_normal(shape)).astype(dtype)


def he(
    shape: tuple[int, ...],
    fan_in: int,
    rng: np.random.Generator,
    dtype: type | np.dtype = np.float32,
) -> np.ndarray:
    """He initialisation for ReLU nets: N(0, 2 / fan_in).

    Parameters
    ----------
    shape : tuple of int
    fan_in : int
        Number of inputs of each unit, > 0.
    rng : numpy.random.Generator
    dtype : float32 or float64
    """
    return normal(shape, float(np.sqrt(2.0 / _fan(fan_in))), rng, dtype)


def xavier(
    shape: tuple[int, ...],
    fan_in: int,
    rng: np.random.Generator,
    dtype: type | np.dtype = np.float32,
) -> np.ndarray:
    """Xavier initialisation as in the book, for sigmoid/tanh nets: N(0, 1 / fan_in).

    Parameters
    ----------
    shape : tuple of int
    fan_in : int
        Number of inputs of each unit, > 0.
    rng : numpy.random.Generator
    dtype : float32 or float64
    """
    return normal(shape, float(np.sqrt(1.0 / _fan(fan_in))), rng, dtype)


def _fan(fan_in: int) -> int:
    if int(fan_in) != fan_in or fan_in <= 0:
        raise ValueError(f"init: fan_in must be a positive integer, got {fan_in!r}")
    return int(fan_in)
