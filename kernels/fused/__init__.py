"""Fused epilogues of the inference plan (``fastnet.inference``): several layers in one pass.

Inference only (there is no backward: the plan never trains). ``x`` is NCHW and
C-contiguous, float32 or float64, on the host (no CUDA variant: the plan runs on the CPU).
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.fused import cpu

NCHW = "(N, C, H, W)"


def relu_maxpool2x2_forward(x: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """ReLU followed by 2x2, stride 2 max pooling (floor mode), in one pass.

    Parameters
    ----------
    x : ndarray (N, C, H, W), float32 or float64, H and W >= 2
    parallel : bool
        Use the multi-threaded variant (planes split across threads).

    Returns
    -------
    ndarray (N, C, H // 2, W // 2), x's dtype: ``relu(maxpool2d(x, 2))``; a NaN in a
    window wins, as in max pooling.
    """
    op = "relu_maxpool2x2_forward"
    x = _checks.float_array(op, "x", x, NCHW)
    if _checks.is_device(x):
        raise ValueError(f"{op}: x must be a host (NumPy) array, got a CUDA device array")
    if min(x.shape[2:]) < 2:
        raise ValueError(f"{op}: x must have H and W >= 2 for a 2x2 window, got {x.shape}")
    y = np.empty((*x.shape[:2], x.shape[2] // 2, x.shape[3] // 2), dtype=x.dtype)
    cpu.relu_maxpool2x2_forward(
        x.reshape(-1, *x.shape[2:]), y.reshape(-1, *y.shape[2:]), parallel=parallel
    )
    return y
