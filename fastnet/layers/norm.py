"""BatchNorm1d and BatchNorm2d (book chapter 6.3), PyTorch's semantics."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnet.layers._base import cached, float_dtype, kernel_table, positive_int
from fastnet.module import Module, Parameter
from kernels import _checks
from kernels.batchnorm import batchnorm_backward, batchnorm_forward
from kernels.batchnorm.reference import batchnorm_backward_ref, batchnorm_forward_ref


class _BatchNorm(Module):
    _layout = ""
    running_mean: np.ndarray  # buffers, registered in __init__ (declared for type checkers)
    running_var: np.ndarray
    KERNELS = kernel_table(
        fast=(batchnorm_forward, batchnorm_backward),
        reference=(batchnorm_forward_ref, batchnorm_backward_ref),
    )

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        c = positive_int(owner, "num_features", num_features)
        self.eps = _checks.positive_float(owner, "eps", eps)
        self.momentum = _checks.positive_float(owner, "momentum", momentum)
        if self.momentum > 1:
            raise ValueError(f"{owner}: momentum must be in [0, 1], got {momentum!r}")
        dt = float_dtype(owner, dtype)
        self.weight = Parameter(np.ones(c, dt))
        self.bias = Parameter(np.zeros(c, dt))
        self.register_buffer("running_mean", np.zeros(c, dt))
        self.register_buffer("running_var", np.ones(c, dt))
        self._cache: Any = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalize per channel: batch statistics in training, running ones in eval."""
        array = isinstance(x, np.ndarray) or _checks.is_device(x)
        if not array or x.ndim != len(self._layout.split(",")):
            shape = getattr(x, "shape", type(x).__name__)
            raise ValueError(
                f"{type(self).__name__}: x must have shape {self._layout}, got {shape}"
            )
        y, mean, invstd = self.ops.forward(
            x,
            self.weight.data,
            self.bias.data,
            self.running_mean,
            self.running_var,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )
        self._cache = (x, mean, invstd, self.training)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input; sets ``weight.grad`` and ``bias.grad``."""
        x, mean, invstd, training = cached(self, "_cache")
        dx, dgamma, dbeta = self.ops.backward(
            dy, x, self.weight.data, mean, invstd, training=training
        )
        self.weight.grad, self.bias.grad = dgamma, dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.weight.data.shape[0]}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, F)`` features.

    Parameters
    ----------
    num_features : int
    eps : float
        Added to the variance.
    momentum : float
        Weight of the new batch statistic in the running averages (PyTorch's meaning);
        the running variance uses the unbiased batch variance.
    dtype : float32 (default) or float64

    Attributes
    ----------
    weight, bias : Parameter (F,)  (gamma and beta)
    running_mean, running_var : ndarray (F,), buffers
    """

    _layout = "(N, F)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization per channel of ``(N, C, H, W)`` input, over N, H and W.

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance.
    momentum : float
        Weight of the new batch statistic in the running averages (PyTorch's meaning);
        the running variance uses the unbiased batch variance.
    dtype : float32 (default) or float64

    Attributes
    ----------
    weight, bias : Parameter (C,)  (gamma and beta)
    running_mean, running_var : ndarray (C,), buffers
    """

    _layout = "(N, C, H, W)"
