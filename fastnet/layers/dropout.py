"""Dropout (book chapter 6.4.3), inverted as in PyTorch."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from fastnet.layers._base import cached, kernel_table
from fastnet.module import Module
from kernels.dropout import dropout_backward, dropout_forward
from kernels.dropout.reference import dropout_backward_ref, dropout_forward_ref


class Dropout(Module):
    """Inverted dropout: in training, zero each unit with probability ``p`` and scale the
    kept ones by ``1 / (1 - p)``; identity in eval mode.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    rng : numpy.random.Generator, optional
        Source of the masks (seed it for reproducible training). Both kernel sets draw
        a mask as ``rng.random(x.shape, dtype=x.dtype) >= p``: the same generator gives
        the same masks on ``"cpu"`` and ``"reference"``.
    """

    KERNELS = kernel_table(
        fast=(dropout_forward, dropout_backward),
        reference=(dropout_forward_ref, dropout_backward_ref),
    )

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p: float = float(p)
        self.rng: np.random.Generator = np.random.default_rng() if rng is None else rng
        self._mask: Any = None  # the mask; False after an eval forward

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape -> same shape."""
        if not self.training:
            self._mask = False
            return x
        y, self._mask = self.ops.forward(x, self.p, self.rng)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Same mask and scale as the forward pass; identity after an eval forward."""
        mask = cached(self, "_mask")
        if mask is False:
            return dy
        return self.ops.backward(dy, mask, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
