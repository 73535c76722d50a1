"""Helpers shared by the layers."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fastnet import init
from fastnet.module import Module

if TYPE_CHECKING:
    from fastnet.layers.affine import Affine
    from fastnet.layers.conv import Conv2d

INITS = {"he": init.he, "xavier": init.xavier}


class Kernels(NamedTuple):
    """A layer's forward and backward functions: one row of its ``KERNELS`` table.

    ``Module.to`` picks the row (``"fast"``: the ``kernels.<family>`` wrappers;
    ``"reference"``: the NumPy ``*_ref`` functions) into the layer's ``ops``.
    """

    forward: Callable[..., Any]
    backward: Callable[..., Any]


KernelPair = tuple[Callable[..., Any], Callable[..., Any]]


def kernel_table(fast: KernelPair, reference: KernelPair) -> dict[str, Kernels]:
    """A layer's ``KERNELS``: ``(forward, backward)`` of its fast kernels and of their NumPy
    references, by kernel set."""
    return {"fast": Kernels(*fast), "reference": Kernels(*reference)}


def float_dtype(owner: str, dtype: Any) -> np.dtype:
    """Return ``dtype`` as float32 or float64, else raise ValueError."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {dt}")
    return dt


def positive_int(owner: str, name: str, value: Any) -> int:
    """Return ``value`` as an int > 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def init_weight(
    owner: str,
    weight_init: str | float,
    shape: tuple[int, ...],
    fan_in: int,
    rng: np.random.Generator | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Draw an initial weight: ``"he"``, ``"xavier"`` or a float standard deviation."""
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{owner}: rng must be a numpy.random.Generator or None, got {type(rng).__name__}"
        )
    rng = np.random.default_rng() if rng is None else rng
    if isinstance(weight_init, str) and weight_init in INITS:
        return INITS[weight_init](shape, fan_in, rng, dtype)
    if isinstance(weight_init, (str, bool)) or not isinstance(weight_init, Real):
        raise ValueError(
            f"{owner}: weight_init must be 'he', 'xavier' or a float std, got {weight_init!r}"
        )
    return init.normal(shape, float(weight_init), rng, dtype)


def cached(module: Module, name: str) -> Any:
    """Return the forward cache ``name`` or raise if ``forward`` has not run."""
    value = getattr(module, name, None)
    if value is None:
        raise RuntimeError(f"{type(module).__name__}.backward called before forward")
    return value


def weighted_backward(
    layer: Conv2d | Affine, dy: np.ndarray, *args: Any, **kwargs: Any
) -> np.ndarray:
    """Backward of a layer with ``weight``, an optional ``bias`` and the input cached as
    ``_x``: ``dx, dw, db = layer.ops.backward(dy, x, weight, *args, **kwargs)``; assigns
    ``weight.grad`` (and ``bias.grad``) and returns ``dx``."""
    dx, dw, db = layer.ops.backward(dy, cached(layer, "_x"), layer.weight.data, *args, **kwargs)
    layer.weight.grad = dw
    if layer.bias is not None:
        layer.bias.grad = db
    return dx
