"""NumPy references for the augmentation warp and the integer shift: the specification."""

import numpy as np


def warp_forward_ref(x: np.ndarray, theta: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Bilinear resampling of each image at affine coordinates plus a displacement field.

    Output pixel ``(i, j)`` of image ``n`` samples every channel of ``x[n]`` at row
    ``sy = theta[n, 0] @ (i, j, 1) + field[n, 0, i, j]`` and column
    ``sx = theta[n, 1] @ (i, j, 1) + field[n, 1, i, j]``, reading zeros outside the image.
    """
    n, _, h, w = x.shape
    i, j = np.meshgrid(np.arange(h, dtype=x.dtype), np.arange(w, dtype=x.dtype), indexing="ij")
    t = theta[:, :, :, None, None]
    sy = t[:, 0, 0] * i + t[:, 0, 1] * j + t[:, 0, 2] + field[:, 0]
    sx = t[:, 1, 0] * i + t[:, 1, 1] * j + t[:, 1, 2] + field[:, 1]
    # Clamping changes nothing: a coordinate at or beyond one pixel outside reads zeros.
    sy, sx = np.clip(sy, -2, h + 1), np.clip(sx, -2, w + 1)
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    images = np.arange(n)[:, None, None]

    def tap(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        v = x[images, :, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]  # (N, H, W, C)
        return np.moveaxis(v, -1, 1) * inside[:, None].astype(x.dtype)

    wy0, wy1 = (1 - fy)[:, None], fy[:, None]
    wx0, wx1 = (1 - fx)[:, None], fx[:, None]
    top = wx0 * tap(y0, x0) + wx1 * tap(y0, x0 + 1)
    bottom = wx0 * tap(y0 + 1, x0) + wx1 * tap(y0 + 1, x0 + 1)
    return wy0 * top + wy1 * bottom


def shift_ref(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Translate image ``n`` so that output pixel ``(i, j)`` is input pixel
    ``(i + offsets[n, 0], j + offsets[n, 1])``, zero where that lies outside."""
    n, _, h, w = x.shape
    s = int(np.max(np.abs(offsets), initial=0))
    padded = np.zeros((n, x.shape[1], h + 2 * s, w + 2 * s), x.dtype)
    padded[:, :, s : s + h, s : s + w] = x
    out = np.empty_like(x)
    for k, (dy, dx) in enumerate(offsets):
        out[k] = padded[k, :, s + dy : s + dy + h, s + dx : s + dx + w]
    return out
