"""Numba kernel for the augmentation warp (bilinear resampling, zeros outside).

Each tap is tested and skipped outside the image; a branch-free form (weight 0 and a
clamped index for outside taps) measured 1.35x slower on the 2-core dev VM (Zen 5).
"""

import numpy as np
from numba import prange

from kernels._jit import kernel


@kernel(size_factor=0.25)
def warp_forward(x, theta, field, out):
    n_img, n_ch, h, w = x.shape
    dt = x.dtype.type
    one, zero, lo = dt(1), dt(0), dt(-2)
    hi_y, hi_x = dt(h + 1), dt(w + 1)
    for n in prange(n_img):
        for i in range(h):
            for j in range(w):
                fi, fj = dt(i), dt(j)
                sy = theta[n, 0, 0] * fi + theta[n, 0, 1] * fj + theta[n, 0, 2] + field[n, 0, i, j]
                sx = theta[n, 1, 0] * fi + theta[n, 1, 1] * fj + theta[n, 1, 2] + field[n, 1, i, j]
                sy = min(max(sy, lo), hi_y)
                sx = min(max(sx, lo), hi_x)
                y0f, x0f = np.floor(sy), np.floor(sx)
                fy, fx = sy - y0f, sx - x0f
                y0, x0 = int(y0f), int(x0f)
                wy = (one - fy, fy)
                wx = (one - fx, fx)
                for c in range(n_ch):
                    acc = zero
                    for dy in range(2):
                        yy = y0 + dy
                        if 0 <= yy < h:
                            top = zero
                            for dx in range(2):
                                xx = x0 + dx
                                if 0 <= xx < w:
                                    top += wx[dx] * x[n, c, yy, xx]
                            acc += wy[dy] * top
                    out[n, c, i, j] = acc
