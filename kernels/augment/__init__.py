"""Augmentation warp: bilinear resampling of image batches at affine coordinates plus a
displacement field (shifts, rotations, scaling and elastic distortion are all this warp).

The random parameters (matrices, fields) are drawn in Python by the caller
(``fastnet.data.augment``); the kernel only applies them, so a seed fixes the output.
Augmentation runs on the host, before a batch is copied to a device: there is no CUDA
kernel here.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.augment import cpu

NCHW = "(N, C, H, W)"


def _finite(op: str, name: str, a: object, shape: tuple[int, ...], layout: str, dtype):
    """``a`` as a C-contiguous finite array of ``shape`` in ``dtype``, or raise."""
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{op}: {name} must be a numeric numpy array {layout}, got "
                         f"{getattr(a, 'dtype', type(a).__name__)}")  # fmt: skip
    _checks.shape_is(op, name, a, shape, layout)
    if not np.isfinite(a).all():
        raise ValueError(f"{op}: {name} must hold finite numbers")
    return np.ascontiguousarray(a, dtype=dtype)


def warp_forward(
    x: np.ndarray, theta: np.ndarray, field: np.ndarray | None = None, *, parallel: bool = True
) -> np.ndarray:
    """Resample each image bilinearly at ``theta @ (i, j, 1) + field``, zeros outside.

    Output pixel ``(i, j)`` (row, column) of image ``n`` reads every channel of ``x[n]``
    at row ``theta[n, 0] @ (i, j, 1) + field[n, 0, i, j]`` and column
    ``theta[n, 1] @ (i, j, 1) + field[n, 1, i, j]``. An identity ``theta`` with an integer
    translation copies pixels exactly (a shift).

    Parameters
    ----------
    x : ndarray, float32 or float64, (N, C, H, W)
        Not modified.
    theta : ndarray (N, 2, 3), finite
        Per-image affine map from output to input coordinates; cast to ``x.dtype``.
    field : ndarray (N, 2, H, W), finite, optional
        Per-pixel displacement (rows, then columns) added to the affine coordinates;
        cast to ``x.dtype``. None: no displacement.
    parallel : bool
        Use the multi-threaded variant (one image per thread).

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    op = "warp_forward"
    x = _checks.float_array(op, "x", x, NCHW)
    n, _, h, w = x.shape
    theta = _finite(op, "theta", theta, (n, 2, 3), "(N, 2, 3)", x.dtype)
    if field is None:
        field = np.zeros((n, 2, h, w), x.dtype)
    field = _finite(op, "field", field, (n, 2, h, w), "(N, 2, H, W)", x.dtype)
    out = np.empty_like(x)
    cpu.warp_forward(x, theta, field, out, parallel=parallel)
    return out
