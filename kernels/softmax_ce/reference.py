"""NumPy references for softmax and the fused softmax cross-entropy: the specification."""

import numpy as np


def softmax_forward_ref(x: np.ndarray) -> np.ndarray:
    """Row softmax of ``x`` (N, K), stable: the row max is subtracted first."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_ce_forward_ref(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean of ``-log softmax(logits)[n, labels[n]]`` (log-sum-exp) and the probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    picked = log_p[np.arange(len(labels)), labels]
    return -float(np.mean(picked, dtype=np.float64)), softmax_forward_ref(logits)


def softmax_ce_backward_ref(
    probs: np.ndarray, labels: np.ndarray, dloss: float = 1.0
) -> np.ndarray:
    """``dlogits = dloss * (probs - onehot(labels)) / N``."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1
    return dloss * (probs - onehot) / len(labels)
