"""Affine (the book's fully connected layer, chapter 5.6) and Flatten."""

from __future__ import annotations

import numpy as np

from fastnet import backend
from fastnet.layers._base import (
    cached,
    float_dtype,
    init_weight,
    kernel_table,
    positive_int,
    weighted_backward,
)
from fastnet.module import Module, Parameter
from kernels.affine import affine_backward, affine_forward
from kernels.affine.reference import affine_backward_ref, affine_forward_ref


class Affine(Module):
    """Fully connected layer ``Y = X @ W + B`` in the book's layout.

    The weight is ``(in_features, out_features)``, the transpose of ``torch.nn.Linear``'s
    ``(out, in)``: to port a Linear, load ``linear.weight.T``. Input of any ndim >= 2
    is flattened to ``(N, in_features)``; the gradient comes back in the input's shape.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    weight_init : "he", "xavier" or float
        He by default (the book's choice for ReLU nets), or a fixed standard deviation.
    rng : numpy.random.Generator, optional
    dtype : float32 (default) or float64

    Attributes
    ----------
    weight : Parameter (in_features, out_features)
    bias : Parameter (out_features,) or None
    """

    KERNELS = kernel_table(
        fast=(affine_forward, affine_backward),
        reference=(affine_forward_ref, affine_backward_ref),
    )

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        weight_init: str | float = "he",
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        super().__init__()
        d = positive_int("Affine", "in_features", in_features)
        m = positive_int("Affine", "out_features", out_features)
        dt = float_dtype("Affine", dtype)
        self.weight = Parameter(init_weight("Affine", weight_init, (d, m), d, rng, dt))
        self.bias = Parameter(np.zeros(m, dt)) if bias else None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) -> (N, out_features)."""
        w = self.weight.data
        b = backend.zeros(w.shape[1], w.dtype, w) if self.bias is None else self.bias.data
        y = self.ops.forward(x, w, b)
        self._x = x
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, out_features) -> input's shape; sets ``weight.grad`` and ``bias.grad``."""
        return weighted_backward(self, dy)

    def extra_repr(self) -> str:
        d, m = self.weight.data.shape
        return f"in_features={d}, out_features={m}, bias={self.bias is not None}"


class Flatten(Module):
    """Reshape ``(N, ...)`` to ``(N, prod(...))``; backward restores the shape."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) -> (N, D)."""
        if not (isinstance(x, np.ndarray) or backend.is_device(x)) or x.ndim < 1:
            raise ValueError(f"Flatten: x must be an array (N, ...), got {type(x).__name__}")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """(N, D) -> the input's shape."""
        return dy.reshape(cached(self, "_shape"))
