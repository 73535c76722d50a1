"""The book's MNIST experiments with the MLP: ``init`` (6.2.4), ``batchnorm`` (6.3.2),
``overfit`` (6.4.1-6.4.3) and ``hparams`` (6.5.3).

Each ``run_*`` takes the data as arrays (uint8 images, int64 labels), so tests
can pass small synthetic sets; the defaults are the book's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastnet import optim
from fastnet.data import random_batches
from fastnet.experiments._common import (
    BookWeightDecay,
    Log,
    losses_of,
    pyplot,
    save_figure,
    save_json,
    smooth,
)
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.loop import evaluate, train_one_epoch
from fastnet.models import mlp
from fastnet.viz import integer_epochs

INITS: dict[str, str | float] = {"std=0.01": 0.01, "Xavier": "xavier", "He": "he"}
BATCH_SIZE = 100  # the epoch experiments' batch size, as the book's scripts


def _save(out: Path, name: str, fig: Any, result: dict) -> dict:
    """Write ``fig`` as ``out/<name>.png`` and ``result`` as ``out/<name>.json``; return
    ``result``."""
    save_figure(fig, out / f"{name}.png")
    save_json(result, out / f"{name}.json")
    return result


def run_init(
    out: Path,
    x: np.ndarray,
    t: np.ndarray,
    *,
    seed: int = 0,
    iterations: int = 2000,
    batch_size: int = 128,
    lr: float = 0.01,
    log: Log = print,
) -> dict:
    """std 0.01 vs Xavier vs He initial weights on the 5-layer ReLU MLP, SGD: loss curves.

    Returns ``{"runs": {init: {"losses", "final_loss"}}}`` (``out/init.json``, ``init.png``).
    """
    runs: dict[str, dict[str, Any]] = {}
    for name, weight_init in INITS.items():
        model = mlp(np.random.default_rng([seed, 0]), weight_init=weight_init)
        losses = losses_of(
            model,
            optim.SGD(model.parameters(), lr=lr),
            x,
            t,
            iterations=iterations,
            batch_size=batch_size,
            rng=np.random.default_rng([seed, 1]),
        )
        runs[name] = {"losses": losses, "final_loss": float(np.mean(losses[-100:]))}
        log(
            f"init: {name:<8} {iterations} iterations: mean loss of the last 100 "
            f"{runs[name]['final_loss']:.4f}"
        )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in runs.items():
        ax.plot(smooth(r["losses"]), label=name)
    ax.set(xlabel="iteration", ylabel="training loss (moving average of 20)", ylim=(0, 2.5))
    ax.legend()
    result = dict(seed=seed, iterations=iterations, batch_size=batch_size, lr=lr, runs=runs)
    return _save(out, "init", fig, result)


def _epochs(model, optimizer, train: tuple, held_out: tuple, epochs: int, rng) -> dict:
    """Train ``epochs`` epochs of the book's loop on ``train = (x, t)``, each
    ``len(x) / BATCH_SIZE`` random batches (the book's sampling); accuracy on ``train`` and
    on ``held_out = (x_eval, t_eval)`` before training and after each epoch."""
    (x, t), (x_eval, t_eval) = train, held_out
    curves: dict[str, list[float]] = {"train": [], "eval": []}
    per_epoch = max(1, len(x) // BATCH_SIZE)
    for epoch in range(epochs + 1):
        if epoch:
            batches = random_batches(x, t, BATCH_SIZE, per_epoch, rng)
            train_one_epoch(model, SoftmaxCrossEntropy(), optimizer, batches)
        curves["train"].append(evaluate(model, x, t, batch_size=1000)[0])
        curves["eval"].append(evaluate(model, x_eval, t_eval, batch_size=1000)[0])
    return curves


def run_batchnorm(
    out: Path,
    x: np.ndarray,
    t: np.ndarray,
    *,
    seed: int = 0,
    train_size: int = 1000,
    epochs: int = 20,
    scales: int = 16,
    lr: float = 0.01,
    log: Log = print,
) -> dict:
    """Training accuracy with and without BatchNorm for initial weight standard deviations
    ``logspace(0, -4, scales)``, on the first ``train_size`` images; 5 hidden layers, SGD.

    Returns ``{"runs": [{"std", "batchnorm": [...], "plain": [...]}]}`` (accuracy per epoch;
    ``out/batchnorm.json``, ``batchnorm.png``).
    """
    x, t = x[:train_size], t[:train_size]
    runs = []
    for k, std in enumerate(np.logspace(0, -4, scales)):
        row: dict[str, Any] = {"std": float(std)}
        for bn in (True, False):
            model = mlp(
                np.random.default_rng([seed, k]),
                hidden=(100,) * 5,
                weight_init=float(std),
                batchnorm=bn,
            )
            sgd, rng = optim.SGD(model.parameters(), lr=lr), np.random.default_rng([seed, k, 1])
            curves = _epochs(model, sgd, (x, t), (x, t), epochs, rng)
            row["batchnorm" if bn else "plain"] = curves["train"]
        runs.append(row)
        log(
            f"batchnorm: {k + 1}/{scales} std {std:.2e}: train accuracy with BatchNorm "
            f"{row['batchnorm'][-1]:.3f}, without {row['plain'][-1]:.3f}"
        )
    plt = pyplot()
    cols = 4
    fig, axes = plt.subplots(
        -(-scales // cols),
        cols,
        figsize=(12, 2.6 * -(-scales // cols)),
        layout="constrained",
        squeeze=False,
    )
    for ax in axes.flat[len(runs) :]:
        ax.set_axis_off()
    for ax, row in zip(axes.flat, runs, strict=False):
        ax.plot(row["batchnorm"], label="BatchNorm")
        ax.plot(row["plain"], "--", label="plain")
        ax.set(title=f"W std {row['std']:.2e}", ylim=(0, 1))
        integer_epochs(ax)
    axes.flat[0].legend(fontsize=8)
    fig.supxlabel("epoch")
    fig.supylabel("training accuracy")
    result = {"seed": seed, "train_size": train_size, "epochs": epochs, "lr": lr, "runs": runs}
    return _save(out, "batchnorm", fig, result)


def run_overfit(
    out: Path,
    x: np.ndarray,
    t: np.ndarray,
    x_test: np.ndarray,
    t_test: np.ndarray,
    *,
    seed: int = 0,
    train_size: int = 300,
    epochs: int = 201,
    weight_decay: float = 0.1,
    dropout: float = 0.2,
    lr: float = 0.01,
    log: Log = print,
) -> dict:
    """Overfitting on ``train_size`` images with a 6-hidden-layer MLP, plain vs weight
    decay (on the weights, as the book) vs dropout: train and test accuracy per epoch.

    Returns ``{"runs": {variant: {"train": [...], "test": [...], "gap": last train - test}}}``
    (``out/overfit.json``, ``overfit.png``).
    """
    x, t = x[:train_size], t[:train_size]
    variants = {
        "plain": (0.0, 0.0),
        f"weight decay {weight_decay:g}": (weight_decay, 0.0),
        f"dropout {dropout:g}": (0.0, dropout),
    }
    runs = {}
    for name, (wd, p) in variants.items():
        model = mlp(np.random.default_rng([seed, 0]), hidden=(100,) * 6, dropout=p)
        decay, rng = BookWeightDecay(model, lr, wd), np.random.default_rng([seed, 1])
        curves = _epochs(model, decay, (x, t), (x_test, t_test), epochs, rng)
        gap = curves["train"][-1] - curves["eval"][-1]
        runs[name] = {"train": curves["train"], "test": curves["eval"], "gap": gap}
        log(
            f"overfit: {name:<16} after {epochs} epochs: train {curves['train'][-1]:.3f}, "
            f"test {curves['eval'][-1]:.3f}, gap {gap:.3f}"
        )
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(12, 3.6), layout="constrained")
    for ax, (name, r) in zip(axes, runs.items(), strict=True):
        ax.plot(r["train"], label="train")
        ax.plot(r["test"], label="test")
        ax.set(title=name, xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
        integer_epochs(ax)
    axes[0].legend()
    result = {"seed": seed, "train_size": train_size, "epochs": epochs, "lr": lr, "runs": runs}
    return _save(out, "overfit", fig, result)


def run_hparams(
    out: Path,
    x: np.ndarray,
    t: np.ndarray,
    *,
    seed: int = 0,
    train_size: int = 500,
    val_split: float = 0.2,
    trials: int = 100,
    epochs: int = 50,
    show: int = 20,
    log: Log = print,
) -> dict:
    """Random search: learning rate ``10^U(-6, -2)`` and weight decay ``10^U(-8, -4)``,
    each trial a 6-hidden-layer MLP trained with SGD on ``train_size`` images less a
    validation split (shuffled by the seed); trials ranked by final validation accuracy.

    Returns ``{"trials": [{"lr", "weight_decay", "val", "train"}], ...}`` best first
    (``out/hparams.json``; ``hparams.png``: the best ``show`` trials' curves).
    """
    order = np.random.default_rng([seed, 0]).permutation(min(train_size, len(x)))
    n_val = int(round(len(order) * val_split))
    val, tr = order[:n_val], order[n_val:]
    draw = np.random.default_rng([seed, 1])
    results = []
    for k in range(trials):
        lr, wd = 10 ** draw.uniform(-6, -2), 10 ** draw.uniform(-8, -4)
        model = mlp(np.random.default_rng([seed, 2, k]), hidden=(100,) * 6)
        decay, rng = BookWeightDecay(model, lr, wd), np.random.default_rng([seed, 3, k])
        curves = _epochs(model, decay, (x[tr], t[tr]), (x[val], t[val]), epochs, rng)
        results.append(
            {"lr": lr, "weight_decay": wd, "val": curves["eval"], "train": curves["train"]}
        )
        log(
            f"hparams: trial {k + 1}/{trials}: lr {lr:.2e}, weight decay {wd:.2e}: "
            f"val accuracy {curves['eval'][-1]:.3f}"
        )
    results.sort(key=lambda r: -r["val"][-1])
    for rank, r in enumerate(results[:show]):
        log(
            f"hparams: best {rank + 1}: val accuracy {r['val'][-1]:.3f}  lr {r['lr']:.2e}  "
            f"weight decay {r['weight_decay']:.2e}"
        )
    result = dict(seed=seed, train_size=len(order), val_size=n_val, epochs=epochs, trials=results)
    return _save(out, "hparams", _plot_hparams(results[:show]), result)


def _plot_hparams(best: list[dict]) -> Any:
    """The validation and training curves of the ``best`` trials, a panel each: the figure."""
    plt = pyplot()
    cols = 5
    rows = max(1, -(-len(best) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(12, 2.4 * rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for rank, (ax, r) in enumerate(zip(axes.flat, best, strict=False)):
        ax.set_axis_on()
        ax.plot(r["val"], label="validation")
        ax.plot(r["train"], "--", label="train")
        ax.set(ylim=(0, 1))
        ax.set_title(f"{rank + 1}: lr {r['lr']:.1e}, wd {r['weight_decay']:.1e}", fontsize=8)
        integer_epochs(ax)
    axes.flat[0].legend(fontsize=8)
    fig.supxlabel("epoch")
    fig.supylabel("accuracy")
    fig.suptitle(f"the {len(best)} best trials: learning rate (lr), weight decay (wd)")
    return fig
