"""NumPy references for 2-D convolution (cross-correlation, as PyTorch): the specification.

Written as explicit loops over the kernel offsets ``(kh, kw)``: each offset contributes
one strided window of the zero-padded input times one ``(OC, C)`` slice of the weights.
Shape names: x ``(N, C, H, W)``, w ``(OC, C, KH, KW)``, y ``(N, OC, OH, OW)``.
"""

import numpy as np


def _window(kh: int, kw: int, oh: int, ow: int, sh: int, sw: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that output pixels read at offset (kh, kw)."""
    return slice(kh, kh + sh * (oh - 1) + 1, sh), slice(kw, kw + sw * (ow - 1) + 1, sw)


def _pairs(stride, padding) -> tuple[int, int, int, int]:
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    return sh, sw, ph, pw  # type: ignore[return-value]  # np.isscalar narrows to NumPy's types


def conv2d_forward_ref(x, w, b, stride=1, padding=0) -> np.ndarray:
    """``y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * xp[n, c, i*SH + kh, j*SW + kw]``
    with ``xp`` the input zero-padded by ``(PH, PW)``."""
    sh, sw, ph, pw = _pairs(stride, padding)
    n, _, h, wd = x.shape
    oc, _, kh_, kw_ = w.shape
    oh, ow = (h + 2 * ph - kh_) // sh + 1, (wd + 2 * pw - kw_) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, oc, oh, ow), dtype=x.dtype)
    for kh in range(kh_):
        for kw in range(kw_):
            rows, cols = _window(kh, kw, oh, ow, sh, sw)
            y += np.einsum("nchw,oc->nohw", xp[:, :, rows, cols], w[:, :, kh, kw])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_ref(dy, x, w, stride=1, padding=0) -> tuple[np.ndarray, ...]:
    """Gradients ``(dx, dw, db)`` of ``sum(y * dy)`` for ``y = conv2d_forward_ref(x, w, b)``."""
    sh, sw, ph, pw = _pairs(stride, padding)
    _, _, h, wd = x.shape
    _, _, oh, ow = dy.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for kh in range(w.shape[2]):
        for kw in range(w.shape[3]):
            rows, cols = _window(kh, kw, oh, ow, sh, sw)
            dw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", dy, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", dy, w[:, :, kh, kw])
    dx = dxp[:, :, ph : ph + h, pw : pw + wd].copy()
    return dx, dw, dy.sum(axis=(0, 2, 3))
