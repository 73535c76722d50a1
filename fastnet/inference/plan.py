"""Compile a model into a plan: the fusion of its layers into steps, and the plan that runs
them (see ``fastnet.inference``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from fastnet.inference.steps import AffineStep, CallStep, ConvStep, Step, as_itself
from fastnet.layers import (
    Affine,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    MaxPool2d,
    ReLU,
)
from fastnet.module import Module, Sequential
from kernels import _checks


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
    steps: list[Step] = []
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

    def __init__(self, steps: list[Step], dtype: np.dtype | None) -> None:
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
        times: list[list[float]] = [[] for _ in self.steps]
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


def _fuse(layers: list[tuple[int, Module]]) -> tuple[Step, int]:
    """The step that starts at ``layers[0]`` and how many layers it takes."""
    first: Any = layers[0][1]  # of kind kinds[0]
    kinds = [type(m) for _, m in layers]
    if kinds[0] in (Conv2d, Affine):
        norm = BatchNorm2d if kinds[0] is Conv2d else BatchNorm1d
        used = 1
        w, b = _weights(first)
        second: Any = layers[1][1] if len(layers) > 1 else None  # of kind kinds[1]
        if len(kinds) > 1 and kinds[1] is norm and _fits(second, w, first):
            w, b = _fold(w, b, second, first)
            used += 1
        relu = used < len(kinds) and kinds[used] is ReLU
        used += relu
        pool = relu and used < len(kinds) and _is_pool2x2(layers[used][1]) and kinds[0] is Conv2d
        used += pool
        name = _name(layers[:used])
        if kinds[0] is Conv2d:
            epilogue = "relu+maxpool2x2" if pool else "relu" if relu else ""
            return ConvStep(w, b, first.stride, first.padding, epilogue, name), used
        return AffineStep(w, b, relu, name), used
    return CallStep(as_itself(first), _name(layers[:1])), 1


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
