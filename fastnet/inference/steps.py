"""The steps of an inference plan: each runs one or a few fused layers on a batch, into
buffers it allocates once per input shape (see ``fastnet.inference``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np

from fastnet.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Flatten,
    MaxPool2d,
    ReLU,
    Sigmoid,
)
from fastnet.module import Module
from kernels.activation import cpu as activation_cpu
from kernels.activation import relu_forward, sigmoid_forward
from kernels.affine import affine_forward
from kernels.affine import cpu as affine_cpu
from kernels.batchnorm import batchnorm_forward
from kernels.conv import conv2d_forward, conv2d_forward_packed, pack_conv2d
from kernels.fused import cpu as fused_cpu
from kernels.pool import avgpool2d_forward, maxpool2d_forward

# A convolution on fewer images than threads is split over blocks of output channels when
# each part gets at least this many FLOPs per image. The parts run on Python threads
# (``kernels._jit.run_calls``), and waking one and handing it the GIL costs 50-70 us on the
# 2-core Zen 5 VM. Measured there with the per-ISA tiles (one image, 2 threads, quiet
# machine, medians of 7): 14.5 MFLOP took 121 us split against 100 us whole, 28.9 MFLOP
# 167 against 173 us, 57.8 MFLOP 254 against 360 us, 115.6 MFLOP 464 against 733 us. So
# none of VGG's layers (at most 4.7 MFLOP per image) is split at batch 1.
SPLIT_MIN_FLOPS = 14_000_000
# Input shapes whose buffers a step keeps (the oldest is dropped beyond this).
SHAPES_KEPT = 4


def _probe(x: np.ndarray) -> np.ndarray:
    """One zero input like ``x``: the kernel's wrapper, run on it once per input shape and
    dtype, checks them with its own messages, the layer's (the plan's calls of the kernels
    skip those checks, or make only cheap ones)."""
    return np.zeros((1, *x.shape[1:]), x.dtype)


class Step:
    """One step of a plan: ``run(x) -> y``; ``str(step)`` names its layers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._states: dict[tuple, Any] = {}

    def run(self, x: np.ndarray) -> np.ndarray:
        """This step's output on ``x``: a buffer of the step, valid until its next run."""
        raise NotImplementedError

    def _state(self, x: np.ndarray) -> Any:
        """This step's buffers for inputs of ``x``'s shape and dtype, made on first use (at
        most ``SHAPES_KEPT`` shapes are kept)."""
        key = (x.shape, x.dtype)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._prepare(x)
            if len(self._states) > SHAPES_KEPT:
                del self._states[next(iter(self._states))]
        return state

    def _prepare(self, x: np.ndarray) -> Any:
        """Check inputs like ``x`` (through the kernels' wrappers) and allocate the buffers."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


class CallStep(Step):
    """A layer that runs as itself (through its kernel's validating wrapper)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], name: str) -> None:
        super().__init__(name)
        self.fn = fn

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.fn(x))  # what the next step's kernel takes


def as_itself(layer: Module) -> Callable[[np.ndarray], np.ndarray]:
    """The eval-mode forward of ``layer`` without the caches a backward pass would need."""
    kind = type(layer)
    if kind is ReLU:
        return relu_forward
    if kind is Sigmoid:
        return sigmoid_forward
    if kind is Flatten:
        return lambda x: x.reshape(x.shape[0], -1)
    if kind in (MaxPool2d, AvgPool2d):
        pool = maxpool2d_forward if kind is MaxPool2d else avgpool2d_forward
        pooling = cast("MaxPool2d | AvgPool2d", layer)
        geometry = (pooling.kernel_size, pooling.stride, pooling.padding)
        return lambda x: _first(pool(x, *geometry))
    if kind in (BatchNorm1d, BatchNorm2d):
        return lambda x: _batchnorm_eval(cast("BatchNorm1d | BatchNorm2d", layer), x)
    return layer


def _first(result: Any) -> np.ndarray:
    """``y`` of a kernel that returns ``y`` or ``(y, extra)``."""
    return result[0] if isinstance(result, tuple) else result


def _batchnorm_eval(layer: BatchNorm1d | BatchNorm2d, x: np.ndarray) -> np.ndarray:
    """``layer`` in eval mode on ``x`` (with the layer's own shape check)."""
    if x.ndim != len(layer._layout.split(",")):
        raise ValueError(
            f"{type(layer).__name__}: x must have shape {layer._layout}, got {x.shape}"
        )
    args = (layer.weight.data, layer.bias.data, layer.running_mean, layer.running_var)
    return batchnorm_forward(x, *args, training=False, eps=layer.eps)[0]


class AffineStep(Step):
    """Affine (batch norm folded in), then the ReLU in place if ``relu``."""

    def __init__(self, w: np.ndarray, b: np.ndarray, relu: bool, name: str) -> None:
        super().__init__(name)
        self.w, self.b, self.relu = w, b, relu

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        affine_forward(_probe(x), self.w, self.b)
        return np.empty((x.shape[0], self.w.shape[1]), self.w.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        y = self._state(x)
        affine_cpu.affine_forward(x.reshape(x.shape[0], -1), self.w, self.b, y)
        if self.relu:
            activation_cpu.relu_forward(y.reshape(-1), y.reshape(-1))
        return y


class ConvStep(Step):
    """Conv2d (batch norm folded in) and its epilogue: ``""``, ``"relu"`` (in place) or
    ``"relu+maxpool2x2"`` (one fused pass into a quarter-size buffer).

    The weights are packed once for the host's register tile (``kernels.conv.pack_conv2d``);
    each run is one ``kernels.conv.conv2d_forward_packed`` into this step's buffer, over the
    threads by images, or, for fewer images than threads, each image over blocks of output
    channels (``_parts``).
    """

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray,
        stride: tuple[int, int],
        padding: tuple[int, int],
        epilogue: str,
        name: str,
    ) -> None:
        super().__init__(name)
        self.w, self.b, self.stride, self.padding = w, b, stride, padding
        self.epilogue = epilogue
        self.packed = pack_conv2d(w, b, stride, padding)

    def _prepare(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        oh, ow = conv2d_forward(_probe(x), self.w, self.b, self.stride, self.padding).shape[2:]
        y = np.empty((x.shape[0], self.w.shape[0], oh, ow), self.w.dtype)
        out = y
        if self.epilogue == "relu+maxpool2x2":
            maxpool2d_forward(y[:1], 2)  # the pool's own check that the window fits
            out = np.empty((x.shape[0], self.w.shape[0], oh // 2, ow // 2), self.w.dtype)
        return y, out

    def run(self, x: np.ndarray) -> np.ndarray:
        y, out = self._state(x)
        parts = self._parts(x.shape[0], y.shape[2] * y.shape[3], numba.get_num_threads())
        conv2d_forward_packed(x, self.packed, y, parts=parts)
        if self.epilogue == "relu":
            activation_cpu.relu_forward(y.reshape(-1), y.reshape(-1))
        elif self.epilogue:
            fused_cpu.relu_maxpool2x2_forward(
                y.reshape(-1, *y.shape[2:]), out.reshape(-1, *out.shape[2:])
            )
        return out

    def _parts(self, n: int, pixels: int, threads: int) -> int:
        """Parts each of ``n`` images is split into: 1 when the images alone keep the threads
        busy, else up to one per thread, at most one per block of output channels (the
        tile's lanes), each with at least ``SPLIT_MIN_FLOPS`` of work."""
        if n >= threads:
            return 1
        flops = 2 * self.w.size * pixels
        return max(1, min(threads // n, self.packed.blocks, flops // SPLIT_MIN_FLOPS))
