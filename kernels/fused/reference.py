"""NumPy references for the fused inference epilogues: the specification."""

import numpy as np


def relu_maxpool2x2_forward_ref(x: np.ndarray) -> np.ndarray:
    """ReLU of the 2x2, stride 2 max pooling of ``x`` (N, C, H, W) -> (N, C, H // 2, W // 2).

    Floor mode (an odd last row or column is dropped); a NaN in a window wins and stays NaN
    through the ReLU, as ``relu(maxpool2d(x, 2))`` (and ``maxpool2d(relu(x), 2)``: the ReLU
    is monotonic, so the order does not matter).
    """
    n, c, h, w = x.shape
    oh, ow = h // 2, w // 2
    windows = x[:, :, : 2 * oh, : 2 * ow].reshape(n, c, oh, 2, ow, 2)
    m = windows.max(axis=(3, 5))  # NumPy's max propagates NaN
    return np.where(m <= 0, np.zeros_like(m), m)
