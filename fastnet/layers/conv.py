"""Conv2d: the convolution layer (book chapter 7.4), PyTorch's interface."""

from __future__ import annotations

import numpy as np

from fastnet.layers._base import (
    cached,
    float_dtype,
    init_weight,
    kernel_table,
    positive_int,
    weighted_backward,
)
from fastnet.layers.activation import ReLU
from fastnet.module import Module, Parameter
from kernels import _checks
from kernels.conv import conv2d_backward, conv2d_forward
from kernels.conv.reference import conv2d_backward_ref, conv2d_forward_ref


class Conv2d(Module):
    """2-d convolution (cross-correlation) over NCHW input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or (int, int)
        As in ``torch.nn.Conv2d`` (zero padding).
    bias : bool
        Learn an additive bias per output channel.
    weight_init : "he", "xavier" or float
        He by default (the book's choice for ReLU nets; PyTorch's default is a scaled
        uniform), or a fixed standard deviation. The bias starts at zero.
    rng : numpy.random.Generator, optional
        Source of the initial weights.
    dtype : float32 (default) or float64

    Attributes
    ----------
    weight : Parameter, (OC, C, KH, KW), PyTorch's layout
    bias : Parameter (OC,) or None
    """

    KERNELS = kernel_table(
        fast=(conv2d_forward, conv2d_backward),
        reference=(conv2d_forward_ref, conv2d_backward_ref),
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        weight_init: str | float = "he",
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        super().__init__()
        c = positive_int("Conv2d", "in_channels", in_channels)
        oc = positive_int("Conv2d", "out_channels", out_channels)
        kh, kw = _checks.int_pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _checks.int_pair("Conv2d", "stride", stride, 1)
        self.padding = _checks.int_pair("Conv2d", "padding", padding, 0)
        dt = float_dtype("Conv2d", dtype)
        shape = (oc, c, kh, kw)
        self.weight = Parameter(init_weight("Conv2d", weight_init, shape, c * kh * kw, rng, dt))
        self.bias = Parameter(np.zeros(oc, dt)) if bias else None
        self._x: np.ndarray | None = None

    def fuses(self, layer: Module | None) -> bool:
        """Whether ``layer``, the next in a ``Sequential``, is a ReLU that this layer's kernels
        apply in its passes (``forward(x, relu)``, ``backward(dy, relu)``): the fast kernels,
        on both, and neither a subclass (whose passes may differ)."""
        return (
            type(self) is Conv2d
            and type(layer) is ReLU
            and self.ops is self.KERNELS["fast"]
            and layer.ops is layer.KERNELS["fast"]
        )

    def forward(self, x: np.ndarray, relu: ReLU | None = None) -> np.ndarray:
        """(N, C, H, W) -> (N, OC, OH, OW); with ``relu`` (a ReLU this layer ``fuses``), that
        layer's forward too, in this layer's kernel (its cache set as by its own forward)."""
        b = None if self.bias is None else self.bias.data
        if relu is None:
            y = self.ops.forward(x, self.weight.data, b, self.stride, self.padding)
        else:
            y = self.ops.forward(x, self.weight.data, b, self.stride, self.padding, relu=True)
            relu._y = y
        self._x = x
        return y

    def backward(self, dy: np.ndarray, relu: ReLU | None = None) -> np.ndarray:
        """(N, OC, OH, OW) -> (N, C, H, W); sets ``weight.grad`` and ``bias.grad``. With
        ``relu`` (the ReLU of ``forward(x, relu)``), ``dy`` is that layer's upstream gradient
        and its backward runs in this layer's kernel."""
        if relu is None:
            return weighted_backward(self, dy, self.stride, self.padding)
        relu_out = cached(relu, "_y")
        return weighted_backward(self, dy, self.stride, self.padding, relu_out=relu_out)

    def extra_repr(self) -> str:
        oc, c, kh, kw = self.weight.data.shape
        return (
            f"{c}, {oc}, kernel_size={(kh, kw)}, stride={self.stride}, padding={self.padding}, "
            f"bias={self.bias is not None}"
        )
