"""Softmax and the fused softmax cross-entropy loss on logits (N, K).

``softmax_ce_forward`` returns the probabilities that ``softmax_ce_backward`` needs, so
the loss layer caches them instead of the logits. Labels are class indices (PyTorch's
``cross_entropy(logits, labels)``), not one-hot rows.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.softmax_ce import cpu

NK = "(N, K)"


def _logits(op: str, name: str, x: np.ndarray) -> np.ndarray:
    x = _checks.float_array(op, name, x, NK)
    if x.size == 0:
        raise ValueError(f"{op}: {name} must have shape {NK} with N, K >= 1, got {x.shape}")
    return x


def _labels(op: str, labels: np.ndarray, n: int, k: int) -> np.ndarray:
    """Return ``labels`` as a C-contiguous intp array (N,) with values in [0, K).

    Device labels are checked for dtype, shape and contiguity only (their range is the
    caller's job: ``SoftmaxCrossEntropy`` checks host labels before uploading them).
    """
    device = _checks.is_device(labels)
    array = device or isinstance(labels, np.ndarray)
    if not array or not np.issubdtype(labels.dtype, np.integer):
        given = getattr(labels, "dtype", type(labels).__name__)
        raise ValueError(f"{op}: labels must be an integer numpy array (N,), got {given}")
    _checks.shape_is(op, "labels", labels, (n,), "(N,)")
    if device:
        return _checks.device_contiguous(op, "labels", labels)
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise ValueError(f"{op}: labels must be in [0, K) = [0, {k}), got {bad[0]}")
    return np.ascontiguousarray(labels, dtype=np.intp)


def check_labels(op: str, labels: np.ndarray, n: int, k: int) -> np.ndarray:
    """Validate host ``labels`` (N,) against ``K`` classes, as the wrappers do.

    For callers that upload labels to the GPU: device labels are only checked for dtype
    and shape by the wrappers. Returns a C-contiguous intp array; raises ``ValueError``.
    """
    return _labels(op, labels, n, k)


def softmax_forward(x: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """Row softmax, stable for large logits (the row max is subtracted first).

    Parameters
    ----------
    x : ndarray (N, K), float32 or float64
    parallel : bool
        Use the multi-threaded variant (rows split across threads).

    Returns
    -------
    ndarray (N, K), same dtype as ``x``; each row sums to 1.
    """
    x = _logits("softmax_forward", "x", x)
    if impl := _checks.cuda_impl("softmax_forward", "softmax_ce", x=x):
        return impl.softmax_forward(x)
    p = np.empty_like(x)
    cpu.softmax_forward(x, p, parallel=parallel)
    return p


def softmax_ce_forward(
    logits: np.ndarray, labels: np.ndarray, *, parallel: bool = True
) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy, fused and log-sum-exp stable.

    Same value as ``torch.nn.functional.cross_entropy(logits, labels)``.

    Parameters
    ----------
    logits : ndarray (N, K), float32 or float64
    labels : ndarray (N,), any integer dtype, values in [0, K)
    parallel : bool
        Use the multi-threaded variant (rows split across threads).

    Returns
    -------
    loss : float
        ``mean_n(-log softmax(logits)[n, labels[n]])``, finite for finite logits.
    probs : ndarray (N, K), same dtype as ``logits``
        The softmax, for ``softmax_ce_backward``.
    """
    op = "softmax_ce_forward"
    logits = _logits(op, "logits", logits)
    labels = _labels(op, labels, *logits.shape)
    if impl := _checks.cuda_impl(op, "softmax_ce", logits=logits, labels=labels):
        return impl.softmax_ce_forward(logits, labels)
    probs = np.empty_like(logits)
    row_loss = np.empty(logits.shape[0], dtype=logits.dtype)
    cpu.softmax_ce_forward(logits, labels, probs, row_loss, parallel=parallel)
    return float(np.mean(row_loss, dtype=np.float64)), probs


def softmax_ce_backward(
    probs: np.ndarray, labels: np.ndarray, dloss: float = 1.0, *, parallel: bool = True
) -> np.ndarray:
    """Gradient of the mean cross-entropy: ``dloss * (probs - onehot(labels)) / N``.

    Parameters
    ----------
    probs : ndarray (N, K), float32 or float64, from ``softmax_ce_forward``
    labels : ndarray (N,), any integer dtype, values in [0, K)
    dloss : float
        Upstream gradient of the scalar loss.
    parallel : bool
        Use the multi-threaded variant (rows split across threads).

    Returns
    -------
    ndarray ``dlogits`` (N, K), same dtype as ``probs``.
    """
    op = "softmax_ce_backward"
    probs = _logits(op, "probs", probs)
    labels = _labels(op, labels, *probs.shape)
    if impl := _checks.cuda_impl(op, "softmax_ce", probs=probs, labels=labels):
        return impl.softmax_ce_backward(probs, labels, dloss)
    scale = probs.dtype.type(float(dloss) / probs.shape[0])
    dx = np.empty_like(probs)
    cpu.softmax_ce_backward(probs, labels, scale, dx, parallel=parallel)
    return dx
