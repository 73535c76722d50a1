"""What the experiments share: the book's weight decay, a run of the book's loop that
keeps every step's loss, and writing results.

Every random draw comes from ``np.random.default_rng([seed, ...])`` streams, so a seed
(with the same thread count and machine) gives bit-identical numbers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastnet import optim
from fastnet.checkpoint import atomic_write
from fastnet.data import random_batches
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.loop import train_one_epoch
from fastnet.module import Module

Log = Callable[[str], None]


class BookWeightDecay:
    """SGD with the book's weight decay (chapter 6.4.1): an L2 penalty on the Affine weights
    only, as ``MultiLayerNet`` adds it; biases and BatchNorm parameters are not decayed.
    Two SGDs stepped as one (``step`` is all the loop asks of an optimizer)."""

    def __init__(self, model: Module, lr: float, weight_decay: float) -> None:
        named = list(model.named_parameters())
        decayed = [name.endswith("weight") and p.data.ndim == 2 for name, p in named]
        weights = [p for (_, p), d in zip(named, decayed, strict=True) if d]
        rest = [p for (_, p), d in zip(named, decayed, strict=True) if not d]
        self.parts = [optim.SGD(weights, lr=lr, weight_decay=weight_decay)]
        self.parts += [optim.SGD(rest, lr=lr)] if rest else []

    def step(self) -> None:
        """One SGD step of every parameter."""
        for part in self.parts:
            part.step()


def losses_of(
    model: Module, optimizer: Any, x: np.ndarray, t: np.ndarray, *,
    iterations: int, batch_size: int, rng: np.random.Generator,
) -> list[float]:  # fmt: skip
    """Train ``iterations`` steps of the book's loop (:func:`fastnet.loop.train_one_epoch`)
    on random batches of uint8 images ``x``; the loss of every step."""
    losses: list[float] = []
    batches = random_batches(x, t, batch_size, iterations, rng)
    train_one_epoch(model, SoftmaxCrossEntropy(), optimizer, batches,
                    lambda loss, correct, size: losses.append(loss))  # fmt: skip
    return losses


def smooth(values: Sequence[float], width: int = 20) -> np.ndarray:
    """Moving average over ``width`` points (the curves in the figures)."""
    v = np.asarray(values, np.float64)
    width = max(1, min(width, len(v)))
    return np.convolve(v, np.ones(width) / width, mode="valid")


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (a clear error without the plot extra)."""
    from fastnet.viz import _require

    return _require("matplotlib")


def _write(path: Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(content))
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    pyplot().close(fig)
    return _write(path, buffer.getvalue())


def save_json(data: dict, path: Path) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return _write(path, (json.dumps(data, indent=1) + "\n").encode())
