"""The book's gradient check (chapter 5.5.3) as a public function."""

from __future__ import annotations

from typing import cast

import numpy as np

from fastnet.layers.loss import SoftmaxCrossEntropy
from fastnet.module import Module


def gradcheck(
    model: Module,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    eps: float = 1e-6,
    max_checks: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """Compare backprop gradients of the softmax cross-entropy loss with numerical ones.

    The numerical gradient of each parameter element is the central difference
    ``(L(p + eps) - L(p - eps)) / (2 eps)``. Run it in float64 (``model.to(np.float64)``
    and a float64 ``x``): float32 rounding swamps the differences. The model must be
    deterministic: put Dropout in eval mode (``model.eval()``) or give it ``p=0``.
    Parameters and buffers (e.g. BatchNorm running statistics) are restored afterwards.

    Parameters
    ----------
    model : Module
        Maps ``x`` to logits ``(N, K)``.
    x : ndarray
        Input batch.
    labels : ndarray (N,)
        Integer class labels.
    eps : float
        Finite-difference step.
    max_checks : int, optional
        Check at most this many randomly chosen elements per parameter (all by default).
    rng : numpy.random.Generator, optional
        Chooses the elements when ``max_checks`` is set.

    Returns
    -------
    dict of str to float
        For each named parameter, the largest absolute difference between the two
        gradients divided by the largest gradient magnitude of that parameter (so 1e-7
        means agreement to about seven digits). A parameter whose true gradient is zero
        (a bias followed by BatchNorm in training mode) shows noise over noise, near 1.

    Raises
    ------
    ValueError
        If the model gives a different loss for the same input twice.
    """
    loss_fn = SoftmaxCrossEntropy()
    saved = model.state_dict()

    def loss() -> float:
        return loss_fn(model(x), labels)

    base = loss()
    if loss() != base:
        raise ValueError(
            "gradcheck: the model is not deterministic (Dropout in training mode?); "
            "call model.eval() or use p=0"
        )
    model.backward(loss_fn.backward())
    analytic = {name: cast(np.ndarray, p.grad).copy() for name, p in model.named_parameters()}
    rng = np.random.default_rng(0) if rng is None else rng
    errors = {}
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        idx = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            idx = rng.choice(flat.size, max_checks, replace=False)
        numeric = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + eps
            plus = loss()
            flat[i] = old - eps
            minus = loss()
            flat[i] = old
            numeric[j] = (plus - minus) / (2 * eps)
        a = analytic[name].reshape(-1)[idx]
        scale = max(np.max(np.abs(a)), np.max(np.abs(numeric)), np.finfo(np.float64).tiny)
        errors[name] = float(np.max(np.abs(a - numeric)) / scale)
    model.load_state_dict(saved)
    for name, p in model.named_parameters():
        p.grad = analytic[name]
    return errors
