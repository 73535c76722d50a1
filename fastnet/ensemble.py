"""Ensembles (the book, chapter 8.1.4): average the softmax outputs of several models.

``fastnet evaluate --ensemble RUN_OR_CHECKPOINT...`` is :func:`load_members` then
:func:`ensemble_evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastnet import backend
from fastnet.data import iterate_batches
from fastnet.errors import CheckpointError, FastnetError
from fastnet.module import Module
from kernels.softmax_ce import softmax_forward


class EnsembleError(FastnetError, ValueError):
    """The members of an ensemble do not fit together (dataset, input shape)."""


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file named by ``path``: the file itself, or a run folder's
    ``checkpoint.npz`` (its final weights: ``best.npz`` was picked on the test set when
    the run had no validation split, which would flatter the ensemble).

    Raises
    ------
    CheckpointError
        Neither a file nor a run folder holding ``checkpoint.npz``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (give a run folder or an .npz)")
    return path


def check_members(names: Sequence[str], datasets: Sequence[str]) -> str:
    """The dataset shared by all members, or raise :class:`EnsembleError` naming the first
    member that differs from the first one."""
    for name, dataset in zip(names, datasets, strict=True):
        if dataset != datasets[0]:
            raise EnsembleError(
                f"ensemble members must share a dataset: {names[0]} is {datasets[0]}, "
                f"{name} is {dataset}"
            )
    return datasets[0]


def _probabilities(model: Module, name: str, images: np.ndarray, batch_size: int) -> np.ndarray:
    model.eval()
    device = backend.module_device(model)
    out = []
    for x, _ in iterate_batches(images, np.zeros(len(images), np.int64), batch_size, shuffle=False):
        try:
            logits = backend.to_host(model(backend.to(x, device)))
        except ValueError as e:
            raise EnsembleError(
                f"{name} does not take this dataset's images {images.shape[1:]}: {e}"
            ) from None
        out.append(softmax_forward(np.ascontiguousarray(logits)))
    return np.concatenate(out)


def ensemble_evaluate(
    models: Sequence[Module],
    names: Sequence[str],
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 100,
) -> tuple[list[float], float, np.ndarray]:
    """Accuracy of each model and of the mean of their softmax outputs.

    Parameters
    ----------
    models : sequence of Module
        Each maps ``(B, ...)`` float images in [0, 1] to ``(B, K)`` logits; put in eval mode.
    names : sequence of str
        One per model, for error messages.
    images : ndarray uint8 (N, C, H, W)
    labels : ndarray int (N,)
    batch_size : int

    Returns
    -------
    (accuracy of each model, accuracy of the ensemble, ensemble predictions int64 (N,))

    Raises
    ------
    EnsembleError
        A model does not take ``images`` or its outputs differ in shape from the others'.
    """
    if not models:
        raise EnsembleError("an ensemble needs at least one model")
    probs: list[np.ndarray] = []
    for model, name in zip(models, names, strict=True):
        p = _probabilities(model, name, images, batch_size)
        if probs and p.shape != probs[0].shape:
            raise EnsembleError(
                f"{name} gives outputs {p.shape[1:]}, {names[0]} gives {probs[0].shape[1:]}"
            )
        probs.append(p)
    accuracies = [float(np.mean(np.argmax(p, axis=1) == labels)) for p in probs]
    pred = np.argmax(np.mean(probs, axis=0), axis=1).astype(np.int64)
    return accuracies, float(np.mean(pred == labels)), pred
