"""What the experiments share: the book's MLP, its training loop, and writing results.

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
from fastnet.layers import Affine, BatchNorm1d, Dropout, Flatten, ReLU, Sigmoid, SoftmaxCrossEntropy
from fastnet.module import Module, Sequential

Log = Callable[[str], None]


def mlp(
    rng: np.random.Generator,
    hidden: Sequence[int] = (100, 100, 100, 100),
    *,
    weight_init: str | float = "he",
    activation: str = "relu",
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> Sequential:
    """The book's MultiLayerNet(Extend): 784 -> hidden... -> 10, float32.

    Each hidden layer is ``Affine [-> BatchNorm1d] -> ReLU|Sigmoid [-> Dropout]``.
    """
    sizes = [28 * 28, *hidden]
    layers: list[Module] = [Flatten()]
    for d, m in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(Affine(d, m, weight_init=weight_init, rng=rng))
        layers += [BatchNorm1d(m)] if batchnorm else []
        layers.append(ReLU() if activation == "relu" else Sigmoid())
        layers += [Dropout(dropout, rng=rng)] if dropout else []
    layers.append(Affine(sizes[-1], 10, weight_init=weight_init, rng=rng))
    return Sequential(*layers)


def sgd_book_decay(model: Module, lr: float, weight_decay: float) -> list[optim.Optimizer]:
    """SGD with the book's weight decay: an L2 penalty on the Affine weights only (the
    biases and BatchNorm parameters are not decayed)."""
    named = list(model.named_parameters())
    weights = [p for name, p in named if name.endswith("weight") and p.data.ndim == 2]
    rest = [p for name, p in named if not (name.endswith("weight") and p.data.ndim == 2)]
    opts: list[optim.Optimizer] = [optim.SGD(weights, lr=lr, weight_decay=weight_decay)]
    return opts + ([optim.SGD(rest, lr=lr)] if rest else [])


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]."""
    return images.astype(np.float32) / np.float32(255)


def accuracy(model: Module, x: np.ndarray, t: np.ndarray, batch: int = 1000) -> float:
    """Accuracy in eval mode on float images (the model is left in eval mode)."""
    model.eval()
    hits = sum(
        int(np.sum(np.argmax(model(x[i : i + batch]), 1) == t[i : i + batch]))
        for i in range(0, len(x), batch)
    )
    return hits / len(x)


def train(
    model: Module,
    opts: Sequence[optim.Optimizer],
    x: np.ndarray,
    t: np.ndarray,
    *,
    iterations: int,
    batch_size: int,
    rng: np.random.Generator,
    every: int = 0,
    on_epoch: Callable[[], None] | None = None,
) -> list[float]:
    """The book's loop: each iteration trains on ``batch_size`` random examples (drawn
    with ``rng.choice``, with replacement across iterations); ``on_epoch()`` runs every
    ``every`` iterations and after the last one when ``every`` divides ``iterations``.

    Returns
    -------
    The training loss of every iteration.
    """
    loss_fn = SoftmaxCrossEntropy()
    losses = []
    if on_epoch is not None:
        on_epoch()
    for it in range(iterations):
        idx = rng.choice(len(x), batch_size)
        model.train()
        losses.append(float(loss_fn(model(x[idx]), t[idx])))
        model.backward(loss_fn.backward())
        for opt in opts:
            opt.step()
        if on_epoch is not None and every and (it + 1) % every == 0:
            on_epoch()
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
