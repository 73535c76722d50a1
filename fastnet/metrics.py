"""Measures of predictions beyond accuracy (``fastnet evaluate`` prints them)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """``m[i, j]`` = number of examples of class ``i`` predicted as ``j``.

    Parameters
    ----------
    labels, pred : ndarray of int (N,)
        True and predicted classes in ``[0, classes)``.
    classes : int

    Returns
    -------
    ndarray int64 (classes, classes)
    """
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m
