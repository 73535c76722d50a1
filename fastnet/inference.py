"""The inference plan: a trained model compiled once into a short list of fused steps.

``plan = inference.compile(model)`` turns a ``Sequential`` of fastnet layers into a
:class:`Plan`; ``plan(x)`` gives ``model.eval()(x)`` up to float rounding:

- Dropout is removed; a BatchNorm directly after a convolution or an Affine is folded into
  its weights and bias (in float64, then rounded to the model's dtype);
- a convolution, its bias, a following ReLU and a following 2x2 max pool run as one step:
  the convolution kernel (weights repacked into its blocked layout once, at compile time;
  offset tables built once per input shape) and one fused epilogue pass
  (``kernels.fused.relu_maxpool2x2_forward``, or the ReLU in place);
- an Affine and a following ReLU run as one step;
- every buffer a step writes is allocated once per input shape and reused;
- a batch smaller than the thread count is split *within* each image, over blocks of
  output channels, when a convolution has enough work per image to pay for waking a thread;
- any other layer (a pool or activation not fused, a stand-alone BatchNorm, a module fastnet
  does not know) runs as itself, so the plan never refuses a model that runs.

Layout: the convolution kernels take and give NCHW (they pad their input internally), so
the activations stay NCHW from step to step and nothing is converted, at the edges or
between steps. ``_ConvStep`` is the one place that knows the kernel's internal interface
(``kernels.conv.cpu``); a kernel with another layout would change that class only.

The plan is a snapshot: later changes to the model's weights do not reach it (compile
again). It computes eval-mode outputs whatever mode the model is in, and runs on the CPU.
Calls are serialized (the buffers are shared), so a plan can be used from several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from fastnet.layers import (
    Affine,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    MaxPool2d,
    ReLU,
    Sigmoid,
)
from fastnet.module import Module, Sequential
from kernels import _checks, _jit
from kernels.activation import cpu as activation_cpu
from kernels.activation import relu_forward, sigmoid_forward
from kernels.affine import affine_forward
from kernels.affine import cpu as affine_cpu
from kernels.batchnorm import batchnorm_forward
from kernels.conv import conv2d_forward
from kernels.conv import cpu as conv_cpu
from kernels.conv import tile as conv_tile
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


def compile(model: Module) -> Plan:  # noqa: A001 - the name the issue asks for
    """Compile ``model`` into an inference plan.

    Parameters
    ----------
    model : Module
        A ``Sequential`` of fastnet layers (nested ``Sequential`` s are flattened), or one
        layer, with its arrays on the host. Its weights are copied: the plan does not follow
        later changes.

    Returns
    -------
    Plan
        ``plan(x)`` equals ``model.eval()(x)`` up to float rounding, for ``x`` of any shape
        the model accepts, in the model's dtype.

    Raises
    ------
    ValueError
        The model's arrays are on a CUDA device (the plan runs on the CPU).
    """
    if any(_checks.is_device(p.data) for p in model.parameters()) or any(
        _checks.is_device(b) for _, b in model.named_buffers()
    ):
        raise ValueError(
            "inference.compile: the model is on a CUDA device; the plan runs on the "
            "CPU (model.to('cpu') first)"
        )
    layers = [(i, m) for i, m in enumerate(flat_layers(model)) if type(m) is not Dropout]
    steps: list[_Step] = []
    while layers:
        step, used = _fuse(layers)
        steps.append(step)
        layers = layers[used:]
    dtypes = {p.data.dtype for p in model.parameters()}
    return Plan(steps, dtypes.pop() if len(dtypes) == 1 else None)


class Plan:
    """A compiled model: call it on a batch (see :func:`compile`).

    Attributes
    ----------
    steps : list
        The steps, in order; ``str(step)`` names the layers each stands for.
    dtype : numpy.dtype or None
        The dtype the plan computes in (the model's), None for a model without weights.
    """

    def __init__(self, steps: list[_Step], dtype: np.dtype | None) -> None:
        self.steps = steps
        self.dtype = dtype
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the plan on ``x`` (N, ...) in the plan's dtype; returns a new array."""
        x = self._check(x)
        with self._lock:
            for step in self.steps:
                x = step.run(x)
            return np.array(x, copy=True)

    def profile(self, x: np.ndarray, rounds: int = 20) -> list[tuple[str, float]]:
        """Median seconds of each step on ``x`` over ``rounds`` runs (after one warm-up run).

        Returns
        -------
        list of (step name, seconds), in order.
        """
        x = self._check(x)
        times = [[] for _ in self.steps]
        with self._lock:
            for _ in range(rounds + 1):
                h = x
                for step, record in zip(self.steps, times, strict=True):
                    t0 = time.perf_counter()
                    h = step.run(h)
                    record.append(time.perf_counter() - t0)
        return [(str(s), float(np.median(t[1:]))) for s, t in zip(self.steps, times, strict=True)]

    def _check(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a C-contiguous float array in the plan's dtype, else ValueError."""
        x = _checks.float_array("plan", "x", x, "(N, ...)")
        if _checks.is_device(x):
            raise ValueError("plan: x must be a host (NumPy) array, got a CUDA device array")
        if self.dtype is not None and x.dtype != self.dtype:
            raise ValueError(f"plan: x must be {self.dtype} (the model's dtype), got {x.dtype}")
        return x

    def __repr__(self) -> str:
        return "Plan(\n" + "".join(f"  {s}\n" for s in self.steps) + ")"


def flat_layers(model: Module) -> list[Module]:
    """The layers of ``model`` in order, nested ``Sequential`` s opened up (``model`` itself
    when it is not a ``Sequential``)."""
    if type(model) is not Sequential:
        return [model]
    return [layer for m in model for layer in flat_layers(m)]


def _fuse(layers: list[tuple[int, Module]]) -> tuple[_Step, int]:
    """The step that starts at ``layers[0]`` and how many layers it takes."""
    first = layers[0][1]
    kinds = [type(m) for _, m in layers]
    if kinds[0] in (Conv2d, Affine):
        norm = BatchNorm2d if kinds[0] is Conv2d else BatchNorm1d
        used = 1
        w, b = _weights(first)
        if len(kinds) > 1 and kinds[1] is norm and _fits(layers[1][1], w, first):
            w, b = _fold(w, b, layers[1][1], first)
            used += 1
        relu = used < len(kinds) and kinds[used] is ReLU
        used += relu
        pool = relu and used < len(kinds) and _is_pool2x2(layers[used][1]) and kinds[0] is Conv2d
        used += pool
        name = _name(layers[:used])
        if kinds[0] is Conv2d:
            epilogue = "relu+maxpool2x2" if pool else "relu" if relu else ""
            return _ConvStep(w, b, first.stride, first.padding, epilogue, name), used
        return _AffineStep(w, b, relu, name), used
    return _CallStep(_as_itself(first), _name(layers[:1])), 1


def _weights(layer: Conv2d | Affine) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a layer's weight and bias (zeros without a bias)."""
    w = layer.weight.data
    b = np.zeros(w.shape[0 if type(layer) is Conv2d else 1], w.dtype)
    return w.copy(), b if layer.bias is None else layer.bias.data.copy()


def _fits(norm: BatchNorm1d | BatchNorm2d, w: np.ndarray, layer: Module) -> bool:
    """Whether the batch norm has one channel per output of ``layer`` (else it runs as
    itself and raises what the model raises)."""
    outputs = w.shape[0] if type(layer) is Conv2d else w.shape[1]
    return norm.weight.data.shape == (outputs,) and norm.weight.data.dtype == w.dtype


def _fold(
    w: np.ndarray, b: np.ndarray, norm: BatchNorm1d | BatchNorm2d, layer: Module
) -> tuple[np.ndarray, np.ndarray]:
    """``w, b`` with the eval-mode batch norm after them folded in (float64, then rounded):
    ``norm(x @ w + b) = x @ (w * s) + (b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``."""
    s = norm.weight.data.astype(np.float64) / np.sqrt(
        norm.running_var.astype(np.float64) + norm.eps
    )
    shift = (b - norm.running_mean.astype(np.float64)) * s + norm.bias.data
    scaled = w * (s[:, None, None, None] if type(layer) is Conv2d else s)
    return scaled.astype(w.dtype), shift.astype(w.dtype)


def _is_pool2x2(layer: Module) -> bool:
    """Whether ``layer`` is a 2x2, stride 2, unpadded max pool (the fused epilogue's)."""
    geometry = (layer.kernel_size, layer.stride, layer.padding) if type(layer) is MaxPool2d else 0
    return geometry == ((2, 2), (2, 2), (0, 0))


def _name(layers: list[tuple[int, Module]]) -> str:
    """``"3-5: Conv2d(...) + ReLU + MaxPool2d"``: the model's layer numbers and kinds."""
    first, last = layers[0][0], layers[-1][0]
    span = f"{first}" if first == last else f"{first}-{last}"
    kinds = [repr(layers[0][1]).splitlines()[0]] + [type(m).__name__ for _, m in layers[1:]]
    return f"{span}: " + " + ".join(kinds)


def _as_itself(layer: Module) -> Callable[[np.ndarray], np.ndarray]:
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
        geometry = (layer.kernel_size, layer.stride, layer.padding)
        return lambda x: _first(pool(x, *geometry))
    if kind in (BatchNorm1d, BatchNorm2d):
        return lambda x: _batchnorm_eval(layer, x)
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


def _probe(x: np.ndarray) -> np.ndarray:
    """One zero input like ``x``: the kernel's wrapper, run on it once per input shape and
    dtype, checks them with its own messages (the plan's calls skip the checks)."""
    return np.zeros((1, *x.shape[1:]), x.dtype)


class _Step:
    """One step of a plan: ``run(x) -> y``; ``str(step)`` names its layers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._states: dict[tuple, Any] = {}

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self, x: np.ndarray) -> Any:
        """This step's buffers (and tables) for inputs of ``x``'s shape and dtype, made on
        first use."""
        key = (x.shape, x.dtype)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._prepare(x)
            if len(self._states) > SHAPES_KEPT:
                del self._states[next(iter(self._states))]
        return state

    def _prepare(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


class _CallStep(_Step):
    """A layer that runs as itself (through its kernel's validating wrapper)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], name: str) -> None:
        super().__init__(name)
        self.fn = fn

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.fn(x))  # what the next step's kernel takes


class _AffineStep(_Step):
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


class _ConvStep(_Step):
    """Conv2d (batch norm folded in) and its epilogue: ``""``, ``"relu"`` (in place) or
    ``"relu+maxpool2x2"`` (one fused pass into a quarter-size buffer).

    The seam to ``kernels.conv``: the host's register tile (``tile``) picks the kernel
    variant (``cpu.kernels``), the weights are packed once for it (``cpu.blocks``), the
    offset tables come from ``cpu.forward_plan`` per input shape, and the forward chunk
    kernel runs on them; the batch is split over the threads by images, or, for fewer images
    than threads, each image over blocks of output channels (``_parts``).
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
        self.pixels, self.lanes = conv_tile(w.dtype, w.shape[0])
        self.forward = conv_cpu.kernels(self.pixels, self.lanes)[0]
        self.m = conv_cpu.blocks(w, self.lanes)
        self.init = conv_cpu.blocks(b[:, None, None, None], self.lanes).reshape(-1, self.lanes)

    def _prepare(self, x: np.ndarray) -> tuple:
        oh, ow = conv2d_forward(_probe(x), self.w, self.b, self.stride, self.padding).shape[2:]
        oc, _, kh, kw = self.w.shape
        geom = (kh, kw, *self.stride, *self.padding, oh, ow)
        tables, pads = conv_cpu.forward_plan(*x.shape[1:], geom, self.pixels)
        y = np.empty((x.shape[0], oc, oh, ow), self.w.dtype)
        out = y
        if self.epilogue == "relu+maxpool2x2":
            maxpool2d_forward(y[:1], 2)  # the pool's own check that the window fits
            out = np.empty((x.shape[0], oc, oh // 2, ow // 2), self.w.dtype)
        return tables, pads, y, out

    def run(self, x: np.ndarray) -> np.ndarray:
        tables, pads, y, out = self._state(x)
        y2 = y.reshape(*y.shape[:2], -1)
        threads = numba.get_num_threads()
        parts = self._parts(x.shape[0], y2.shape[2], threads)
        if parts > 1:
            calls = [
                self._part(x, tables, pads, y2, n, p, parts)
                for n in range(x.shape[0])
                for p in range(parts)
            ]
            _jit.run_calls(self.forward.body, calls)
        else:
            chunks = max(1, min(threads, x.shape[0]))
            self.forward(x, self.m, self.init, tables, pads, y2, chunks=chunks, parallel=chunks > 1)
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
        return max(1, min(threads // n, self.m.shape[0], flops // SPLIT_MIN_FLOPS))

    def _part(self, x, tables, pads, y2, n: int, p: int, parts: int) -> tuple:
        """Arguments of the kernel body for part ``p`` of image ``n``: its blocks of output
        channels, its channels of ``y2`` (contiguous: one image)."""
        blocks = self.m.shape[0]
        b0, b1 = p * blocks // parts, (p + 1) * blocks // parts
        c0, c1 = b0 * self.lanes, min(b1 * self.lanes, y2.shape[1])
        return (
            x[n : n + 1],
            self.m[b0:b1],
            self.init[b0:b1],
            tables,
            pads,
            y2[n : n + 1, c0:c1],
            0,
            1,
        )
