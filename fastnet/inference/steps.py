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
from kernels.conv import bind_conv2d_forward, conv2d_forward, pack_conv2d
from kernels.pool import avgpool2d_forward, maxpool2d_forward

# A convolution on fewer images than threads is split into parts of each image's output
# pixels when each part gets at least this many FLOPs. The parts run on Numba's threads,
# which cost about 2 us to start while they spin (``kernels._jit.WAIT_POLICY``). Measured
# on the 2-core AMD EPYC Zen 4 (2026-12-08, VGG at batch 1, 2 threads, medians of 2000
# runs): 135-150 us whether the first layer (0.23 MFLOP) is split or not, against 190 us
# with no layer split; each of the others (1.8-4.7 MFLOP) took 0.6x its time on one
# thread. (Handed to Python threads, a part cost 50-70 us: no VGG layer was split.)
SPLIT_MIN_FLOPS = 200_000
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
    """Conv2d (batch norm folded in) and its epilogue: ``""``, ``"relu"`` or
    ``"relu+maxpool2x2"``, applied by the convolution's kernel to each image while it is
    in cache (into a quarter-size buffer with pooling).

    The weights are packed once for the host's register tile (``kernels.conv.pack_conv2d``);
    each run is one ``kernels.conv.conv2d_forward_packed`` into this step's buffers, over the
    threads by images, or, for fewer images than threads, each image in parts (``_parts``).
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

    def _prepare(self, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        y = conv2d_forward(_probe(x), self.w, self.b, self.stride, self.padding)
        if self.epilogue == "relu+maxpool2x2":
            maxpool2d_forward(y, 2)  # the pool's own check that the window fits
        oh, ow = y.shape[2:]
        parts = self._parts(x.shape[0], oh * ow, numba.get_num_threads())
        return bind_conv2d_forward(self.packed, x.shape, epilogue=self.epilogue, parts=parts)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._state(x)(x)

    def _parts(self, n: int, pixels: int, threads: int) -> int:
        """Parts each of ``n`` images is split into: 1 when the images alone keep the threads
        busy, else up to one per thread, each with at least ``SPLIT_MIN_FLOPS`` of work
        (``bind_conv2d_forward`` makes at most one per register tile)."""
        if n >= threads:
            return 1
        flops = 2 * self.w.size * pixels
        return max(1, min(threads // n, flops // SPLIT_MIN_FLOPS))
