"""The book's training loop (chapters 4-5): forward, loss, backward, update; and evaluation.

Plain functions over a model, a loss, an optimizer and batches, as in pytorch/examples'
mnist. Everything a real run adds (run folder, checkpoints, resume, progress, Ctrl-C, MPI)
is composed around them in :mod:`fastnet.run`; nothing of it is in here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from fastnet import backend, inference
from fastnet.data import iterate_batches
from fastnet.module import Module
from fastnet.optim import Optimizer

Batch = tuple[np.ndarray, np.ndarray]  # (images (B, ...), integer labels (B,))
OnStep = Callable[[float, int, int], None]  # (mean loss, correct predictions, batch size)


def train_one_epoch(
    model: Module,
    loss_fn: Module,
    optimizer: Optimizer,
    batches: Iterable[Batch],
    on_step: OnStep | None = None,
) -> dict[str, float]:
    """Train ``model`` on each batch once: forward, loss, backward, update.

    Parameters
    ----------
    model : Module
        Put in training mode; its ``backward`` sets every parameter's ``grad``.
    loss_fn : Module
        ``loss_fn(logits, labels) -> float`` and ``loss_fn.backward(1.0) -> dlogits``, e.g.
        :class:`fastnet.layers.SoftmaxCrossEntropy`.
    optimizer : Optimizer
        Over ``model.parameters()``; ``step()`` applies the gradients.
    batches : iterable of (x, t)
        Float images ``(B, ...)`` and integer labels ``(B,)``, e.g. from
        :func:`fastnet.data.iterate_batches`.
    on_step : callable, optional
        ``on_step(loss, correct, size)`` after every update: the batch's mean loss, correct
        predictions and images (for a progress bar, a checkpoint, a stop request; it may
        raise to end the epoch).

    Returns
    -------
    dict
        ``{"loss": mean loss, "accuracy": fraction correct}`` over the epoch's images.
    """
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, t in batches:
        logits = model(x)  # forward
        loss = loss_fn(logits, t)  # loss
        model.backward(loss_fn.backward(1.0))  # backward (dL/dL = 1): sets every .grad
        optimizer.step()  # update
        hits = int(np.sum(np.argmax(backend.to_host(logits), axis=1) == t))
        loss_sum, correct, seen = loss_sum + float(loss) * len(t), correct + hits, seen + len(t)
        if on_step is not None:
            on_step(float(loss), hits, len(t))
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1)}


def evaluate(
    model: Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 100
) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` in eval mode on uint8 ``images``, scaled to [0, 1] batch by
    batch; on the CPU through the compiled inference plan (:mod:`fastnet.inference`).

    Parameters
    ----------
    model : Module
        Left in eval mode.
    images : ndarray uint8 (N, ...)
    labels : ndarray int (N,)
    batch_size : int

    Returns
    -------
    (accuracy in [0, 1], predicted labels int64 (N,))
    """
    model.eval()
    device = backend.module_device(model)
    forward = inference.compile(model) if device == "cpu" else model
    dtype = model.parameters()[0].data.dtype if model.parameters() else np.float32
    batches = iterate_batches(images, labels, batch_size, shuffle=False, dtype=dtype)
    parts = [np.argmax(backend.to_host(forward(backend.to(x, device))), 1) for x, _ in batches]
    pred = np.concatenate(parts).astype(np.int64)
    return float(np.mean(pred == labels)), pred
