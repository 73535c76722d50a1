"""SoftmaxWithLoss (book chapter 5.6.3): fused softmax and cross-entropy."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnet import backend
from fastnet.layers._base import cached, kernel_table
from fastnet.module import Module
from kernels.softmax_ce import check_labels, softmax_ce_backward, softmax_ce_forward
from kernels.softmax_ce.reference import softmax_ce_backward_ref, softmax_ce_forward_ref


class SoftmaxCrossEntropy(Module):
    """Mean cross-entropy of ``softmax(logits)`` against integer labels.

    Same value and gradient as ``torch.nn.functional.cross_entropy(logits, labels)``.
    A loss is a module of its own: move it with the model (``loss.to("reference")``).
    """

    KERNELS = kernel_table(
        fast=(softmax_ce_forward, softmax_ce_backward),
        reference=(softmax_ce_forward_ref, softmax_ce_backward_ref),
    )

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Return the mean loss over the batch.

        Parameters
        ----------
        logits : ndarray (N, K), float32 or float64
        labels : ndarray (N,), integers in [0, K)
            With logits on the GPU, host labels are checked and uploaded once here
            (``backward`` reuses them); ``backward`` then returns a device array.
        """
        if backend.is_device(logits) and not backend.is_device(labels):
            op = type(self).__name__
            labels = backend.to_device(check_labels(op, np.asarray(labels), *logits.shape))
        loss, probs = self.ops.forward(logits, labels)
        self._cache = (probs, labels if backend.is_device(labels) else np.asarray(labels))
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """Return ``dlogits`` (N, K) for an upstream gradient ``dloss`` of the loss."""
        probs, labels = cached(self, "_cache")
        return self.ops.backward(probs, labels, dloss)
