"""``activations``: the distribution of each layer's activations for three activation
functions and four initial weight scales (book 6.2.2-6.2.4, the vanishing-gradient
picture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fastnet.experiments._common import Log, pyplot, save_figure, save_json

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
}
# name -> standard deviation of the weights for ``fan_in`` inputs
INITS = {
    "std=1": lambda n: 1.0,
    "std=0.01": lambda n: 0.01,
    "xavier": lambda n: np.sqrt(1 / n),
    "he": lambda n: np.sqrt(2 / n),
}
SATURATION = 0.1  # "near the ends": within 0.1 of an end of the activation's range


def saturated(a: np.ndarray, activation: str) -> float | None:
    """Fraction of ``a`` within ``SATURATION`` of the ends of the activation's range
    (sigmoid: 0 and 1; tanh: -1 and 1), where its gradient vanishes; None for ReLU (no
    upper end; its story is the spread, ``std``, shrinking or growing layer by layer)."""
    if activation == "relu":
        return None
    low = 0.0 if activation == "sigmoid" else -1.0
    return float(np.mean((a < low + SATURATION) | (a > 1 - SATURATION)))


def run(
    out: Path,
    *,
    seed: int = 0,
    samples: int = 1000,
    units: int = 100,
    layers: int = 5,
    log: Log = print,
) -> dict:
    """Push ``samples`` standard-normal inputs through ``layers`` bias-free layers of
    ``units`` units for every activation x initial scale, as the book's script does.

    Returns
    -------
    ``{"runs": {"sigmoid/std=1": {"saturated": [...], "std": [...], "histograms": ...}}}``
    per layer, also in ``out/activations.json``; ``out/activations-<activation>.png``.
    """
    results: dict[str, dict] = {}
    plt = pyplot()
    for k, (act, f) in enumerate(ACTIVATIONS.items()):
        fig, axes = plt.subplots(
            len(INITS), layers, figsize=(2 * layers, 1.8 * len(INITS)), layout="constrained"
        )
        span = (0.0, 1.0) if act != "tanh" else (-1.0, 1.0)
        for r, (init, std) in enumerate(INITS.items()):
            rng = np.random.default_rng([seed, k, r])
            a = rng.standard_normal((samples, units))
            rows: dict[str, list] = {"saturated": [], "mean": [], "std": [], "histograms": []}
            for layer in range(layers):
                a = f(a @ (rng.standard_normal((units, units)) * std(units)))
                counts, edges = np.histogram(a, bins=30, range=span)
                rows["saturated"].append(saturated(a, act))
                rows["mean"].append(float(a.mean()))
                rows["std"].append(float(a.std()))
                rows["histograms"].append(counts.tolist())
                ax = axes[r, layer]
                ax.stairs(counts, edges, fill=True)
                ax.set_yticks([])
                ax.set_title(f"{init}, layer {layer + 1}", fontsize=8)
            results[f"{act}/{init}"] = rows
            sat = rows["saturated"][-1]
            near = "" if sat is None else f"{sat:.0%} within {SATURATION} of the ends, "
            log(f"activations: {act:<7} {init:<8} last layer: {near}std {rows['std'][-1]:.3g}")
        fig.suptitle(f"{act}: activations of each layer ({samples} inputs, {units} units)")
        fig.supxlabel(f"{act} output")
        fig.supylabel("count (30 bins)")
        save_figure(fig, out / f"activations-{act}.png")
    result = {
        "seed": seed,
        "samples": samples,
        "units": units,
        "layers": layers,
        "saturation": SATURATION,
        "runs": results,
    }
    save_json(result, out / "activations.json")
    return result
