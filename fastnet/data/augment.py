"""Data augmentation for training batches."""

from __future__ import annotations

import numpy as np


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each image by a random whole number of pixels, filling with zeros.

    Parameters
    ----------
    x : ndarray (N, C, H, W)
        A batch; not modified.
    max_shift : int
        Shifts are drawn uniformly from ``[-max_shift, max_shift]`` per image and axis.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be an integer >= 0, got {max_shift!r}")
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"random_shift: x must be an array (N, C, H, W), got {np.shape(x)}")
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    s = max_shift
    padded = np.zeros((n, x.shape[1], h + 2 * s, w + 2 * s), x.dtype)
    padded[:, :, s : s + h, s : s + w] = x
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(offsets):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out
