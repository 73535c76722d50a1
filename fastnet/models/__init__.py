"""Model builders by name: the book's networks, no math here.

``build(name, rng=..., dtype=...)`` returns a :class:`fastnet.Sequential` taking
``(N, 1, 28, 28)`` images and giving ``(N, 10)`` logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastnet.layers import (
    Affine,
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


def _vgg(rng: np.random.Generator, dtype: type, batchnorm: bool, dropout: float) -> Sequential:
    """The book's DeepConvNet (chapter 8.1), layer for layer, He initialisation."""
    layers: list[Module] = []
    specs: list[Any] = [(1, 16, 1), (16, 16, 1), "pool", (16, 32, 1), (32, 32, 2), "pool",
             (32, 64, 1), (64, 64, 1), "pool"]  # fmt: skip
    for spec in specs:
        if spec == "pool":
            layers.append(MaxPool2d(2, stride=2))
            continue
        c, oc, pad = spec
        layers.append(Conv2d(c, oc, 3, padding=pad, rng=rng, dtype=dtype))
        if batchnorm:
            layers.append(BatchNorm2d(oc, dtype=dtype))
        layers.append(ReLU())
    layers += [
        Flatten(),
        Affine(64 * 4 * 4, 50, rng=rng, dtype=dtype),
        ReLU(),
        Dropout(dropout, rng=rng),
        Affine(50, 10, rng=rng, dtype=dtype),
        Dropout(dropout, rng=rng),
    ]
    return Sequential(*layers)


def vgg(rng: np.random.Generator, dtype: type = np.float32, dropout: float = 0.5) -> Sequential:
    """The book's VGG-style DeepConvNet: six 3x3 convolutions, three pools, two Affines."""
    return _vgg(rng, dtype, batchnorm=False, dropout=dropout)


def vgg_bn(rng: np.random.Generator, dtype: type = np.float32, dropout: float = 0.5) -> Sequential:
    """``vgg`` with BatchNorm2d after each convolution."""
    return _vgg(rng, dtype, batchnorm=True, dropout=dropout)


def simple(rng: np.random.Generator, dtype: type = np.float32) -> Sequential:
    """The book's SimpleConvNet (chapter 7.5): conv 30x5x5, pool, Affine 100, Affine 10.

    He initialisation (the book's advice for ReLU nets, chapter 6.2) rather than the
    ``weight_init_std=0.01`` of its chapter-7 script, which learns far slower at first.
    """
    return Sequential(
        Conv2d(1, 30, 5, rng=rng, dtype=dtype),
        ReLU(),
        MaxPool2d(2, stride=2),
        Flatten(),
        Affine(30 * 12 * 12, 100, rng=rng, dtype=dtype),
        ReLU(),
        Affine(100, 10, rng=rng, dtype=dtype),
    )


def mlp(
    rng: np.random.Generator,
    dtype: type = np.float32,
    hidden: Sequence[int] = (100, 100, 100, 100),
    *,
    weight_init: str | float = "he",
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> Sequential:
    """The book's MultiLayerNet(Extend) (chapter 6): 784 -> ``hidden`` -> 10, ReLU, He init.

    Each hidden layer is ``Affine [-> BatchNorm1d] -> ReLU|Sigmoid [-> Dropout]``; the
    keywords are the chapter-6 experiments' variations.
    """
    sizes = [28 * 28, *hidden]
    layers: list[Module] = [Flatten()]
    for d, m in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(Affine(d, m, weight_init=weight_init, rng=rng, dtype=dtype))
        layers += [BatchNorm1d(m, dtype=dtype)] if batchnorm else []
        layers.append(ReLU() if activation == "relu" else Sigmoid())
        layers += [Dropout(dropout, rng=rng)] if dropout else []
    layers.append(Affine(sizes[-1], 10, weight_init=weight_init, rng=rng, dtype=dtype))
    return Sequential(*layers)


MODELS: dict[str, Callable[..., Sequential]] = {
    "vgg": vgg,
    "vgg-bn": vgg_bn,
    "simple": simple,
    "mlp": mlp,
}
# Models whose builder takes ``dropout``: the drop rate of their Dropout layers (the
# book's 0.5 by default).
WITH_DROPOUT = ("vgg", "vgg-bn")


def build(
    name: str, rng: np.random.Generator, dtype: type = np.float32, dropout: float | None = None
) -> Sequential:
    """Build the model called ``name`` (one of ``MODELS``).

    Parameters
    ----------
    name : str
        ``"vgg"``, ``"vgg-bn"``, ``"simple"`` or ``"mlp"``.
    rng : numpy.random.Generator
        Draws the initial weights and, for models with Dropout, the masks.
    dtype : float32 (default) or float64
    dropout : float, optional
        Drop rate of every Dropout layer, for the models in ``WITH_DROPOUT``; by default
        the book's 0.5.

    Returns
    -------
    Sequential mapping (N, 1, 28, 28) images to (N, 10) logits.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    if dropout is None:
        return MODELS[name](rng, dtype)
    if name not in WITH_DROPOUT:
        raise ValueError(
            f"model {name!r} has no Dropout layers; a dropout rate applies to "
            f"{', '.join(WITH_DROPOUT)} only"
        )
    return MODELS[name](rng, dtype, dropout=dropout)


def count_parameters(model: Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.data.size for p in model.parameters())
