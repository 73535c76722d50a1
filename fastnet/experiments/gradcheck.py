"""``gradcheck``: backprop against numerical gradients for every model (book 5.5.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnet import models
from fastnet.experiments._common import Log, pyplot, save_figure, save_json
from fastnet.gradient_check import gradcheck


def run(
    out: Path, *, seed: int = 0, batch: int = 3, max_checks: int = 10, log: Log = print
) -> dict:
    """Check each model of ``fastnet.models`` in float64 on ``batch`` random images.

    Each model is in eval mode (Dropout off, BatchNorm on its running statistics); up to
    ``max_checks`` random elements of each parameter are perturbed (the book checks all
    of a two-layer net's; VGG has 10^5).

    Returns
    -------
    ``{"errors": {model: {parameter: max relative error}}, ...}``, also in
    ``out/gradcheck.json``, with ``out/gradcheck.png`` (log10 errors per parameter).
    """
    rng = np.random.default_rng([seed, 0])
    x = rng.random((batch, 1, 28, 28))
    t = rng.integers(0, 10, batch)
    errors = {}
    for name in models.MODELS:
        model = models.build(name, np.random.default_rng([seed, 1]), dtype=np.float64).eval()
        errors[name] = gradcheck(model, x, t, max_checks=max_checks, rng=rng)
        worst = max(errors[name].values())
        log(f"gradcheck: {name:<7} {len(errors[name])} parameters, largest error {worst:.2e}")
    for name, errs in errors.items():
        for param, e in errs.items():
            log(f"  {name:<7} {param:<14} {e:.2e}")
    result = {"seed": seed, "batch": batch, "max_checks": max_checks, "errors": errors}
    save_json(result, out / "gradcheck.json")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, errs in errors.items():
        ax.plot(list(errs), np.log10(np.maximum(list(errs.values()), 1e-17)), "o", label=name)
    ax.axhline(-6, color="grey", ls="--", lw=1, label="1e-6")
    ax.set(xlabel="parameter", ylabel="log10 relative error")
    ax.tick_params(axis="x", rotation=90, labelsize=8)
    ax.legend(fontsize=8)
    ax.set_title("backprop vs numerical gradient (float64)")
    save_figure(fig, out / "gradcheck.png")
    return result
