"""fastnet: the engine of *Deep Learning from Scratch*, with Numba kernels.

Layers, the loss, ``Module``, ``Parameter``, ``Sequential`` and ``gradcheck`` import from
here; optimizers from ``fastnet.optim``; initialisers from ``fastnet.init``.

Importing fastnet is cheap: the names below load on first access (so ``fastnet --help``
does not pay for importing Numba), and each kernel compiles on first use, then comes
from the on-disk cache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Affine": "fastnet.layers",
    "AvgPool2d": "fastnet.layers",
    "BatchNorm1d": "fastnet.layers",
    "BatchNorm2d": "fastnet.layers",
    "Conv2d": "fastnet.layers",
    "Dropout": "fastnet.layers",
    "Flatten": "fastnet.layers",
    "MaxPool2d": "fastnet.layers",
    "ReLU": "fastnet.layers",
    "Sigmoid": "fastnet.layers",
    "SoftmaxCrossEntropy": "fastnet.layers",
    "Module": "fastnet.module",
    "Parameter": "fastnet.module",
    "Sequential": "fastnet.module",
    "gradcheck": "fastnet.gradient_check",
}

__all__ = [
    "Affine",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "gradcheck",
]

if TYPE_CHECKING:
    from fastnet.gradient_check import gradcheck
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
        SoftmaxCrossEntropy,
    )
    from fastnet.module import Module, Parameter, Sequential


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fastnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
