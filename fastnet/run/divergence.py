"""Divergence checks: training stops with :class:`TrainingDiverged` when the loss or a
weight is no longer finite, and no checkpoint is written from then on, so the last one
written holds finite weights."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fastnet.errors import TrainingDiverged


def first_nonfinite(arrays: Iterable[tuple[str, np.ndarray]]) -> str | None:
    """The name of the first ``(name, array)`` with a NaN or an infinity, else None."""
    return next((name for name, value in arrays if not np.isfinite(value).all()), None)


def diverged(what: str, where: str, lr: float, folder: Path) -> TrainingDiverged:
    """The error that ends a diverged run: what is not finite and where, what is kept
    (the last checkpoint in ``folder``) and what to try."""
    last = folder / "checkpoint.npz"
    kept = f"the last good checkpoint {last} is kept" if last.is_file() else "nothing was saved"
    return TrainingDiverged(
        f"{what} at {where}: training diverged and stopped; {kept}; try a lower --lr (now {lr})"
    )
