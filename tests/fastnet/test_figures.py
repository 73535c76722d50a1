"""Every figure fastnet writes (``fastnet experiment NAME``, ``fastnet plot``, ``fastnet
evaluate --misclassified``) is legible: each plot has labelled axes, a legend where it has
several lines, whole-number epochs and no text under 8 pt. The figures are caught as they
are saved and read from matplotlib's objects, on small settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from fastnet import checkpoint, experiments, models, viz
from fastnet.cli import main
from fastnet.experiments import _common

MIN_POINTS = 8
# Each experiment on few images and steps; its figures, as its files.
EXPERIMENTS = {
    "gradcheck": ({}, ["gradcheck.png"]),
    "activations": ({}, [f"activations-{a}.png" for a in ("sigmoid", "tanh", "relu")]),
    "optimizers": ({"iterations": 20, "train_size": 300},
                   ["optimizers-function.png", "optimizers-mnist.png"]),
    "init": ({"iterations": 20, "train_size": 300}, ["init.png"]),
    "batchnorm": ({"epochs": 3, "train_size": 200}, ["batchnorm.png"]),
    "overfit": ({"epochs": 3, "train_size": 100}, ["overfit.png"]),
    "hparams": ({"epochs": 3, "train_size": 200, "trials": 3}, ["hparams.png"]),
}  # fmt: skip


@pytest.fixture
def saved(monkeypatch) -> dict[str, Figure]:
    """The figures saved while a test runs, by the name of their file."""
    figures: dict[str, Figure] = {}
    pending: list[Figure] = []
    savefig, write = Figure.savefig, _common._write

    def catching(fig, fname, *args, **kwargs):
        savefig(fig, fname, *args, **kwargs)
        if isinstance(fname, (str, Path)):
            figures[Path(fname).name] = fig
        else:  # into a buffer, then written by _common._write
            pending.append(fig)

    def writing(path: Path, content: bytes) -> Path:
        if pending and path.suffix == ".png":
            figures[path.name] = pending.pop()
        return write(path, content)

    monkeypatch.setattr(Figure, "savefig", catching)
    monkeypatch.setattr(_common, "_write", writing)
    return figures


def label(ax, axis: str) -> str:
    """The axes' own label of ``axis``, else its figure's (``supxlabel``, ``supylabel``)."""
    own = ax.get_xlabel() if axis == "x" else ax.get_ylabel()
    shared = getattr(ax.figure, f"_sup{axis}label", None)
    return own or (shared.get_text() if shared is not None else "")


def problems(name: str, fig: Figure) -> list[str]:
    """What makes the figure ``name`` hard to read (empty: nothing)."""
    found = []
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    in_legend = {text.get_text() for legend in legends for text in legend.get_texts()}
    for k, ax in enumerate(fig.axes):
        if not ax.axison:  # an image grid
            continue
        where = f"{name}, plot {k + 1} {ax.get_title()!r}"
        found += [f"{where}: no {axis} label" for axis in "xy" if not label(ax, axis)]
        lines = ax.get_lines()
        unnamed = [line.get_label() for line in lines if line.get_label() not in in_legend]
        if len(lines) > 1 and unnamed:
            found.append(f"{where}: lines {unnamed} are in no legend")
        low, high = sorted(ax.get_xlim())
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        if "epoch" in label(ax, "x") and any(t != round(t) for t in ticks):
            found.append(f"{where}: epochs ticked at {ticks}")
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_POINTS:
            found.append(f"{name}: {text.get_text()!r} at {text.get_fontsize()} pt")
    return found


@pytest.fixture(autouse=True, scope="module")
def blas_threads():
    """One BLAS thread, as in test_experiments.py."""
    import scipy.linalg.cython_blas  # noqa: F401 - loads the BLAS of Numba's np.dot
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_the_figures_of_each_experiment_are_legible(name, saved, tmp_path):
    settings, files = EXPERIMENTS[name]
    experiments.run(name, tmp_path, log=lambda line: None, **settings)
    assert sorted(saved) == sorted(files)
    assert [p for name, fig in saved.items() for p in problems(name, fig)] == []


def fake_run(folder: Path, epochs: int, rng: np.random.Generator) -> None:
    """A run folder of ``epochs`` epochs: a metrics line each, a checkpoint of ``simple``."""
    folder.mkdir()
    lines = [{"epoch": e, "lr": 1e-3, "train_loss": 2 / e, "train_accuracy": 0.9,
              "test_accuracy": 0.9, "running_train_accuracy": 0.6, "processes": 1}
             for e in range(1, epochs + 1)]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    model = models.build("simple", rng)
    checkpoint.save(folder / "checkpoint.npz", model.state_dict(), {}, {})


@pytest.mark.parametrize("epochs", [1, 3, 7])
def test_the_figures_of_fastnet_plot_are_legible(epochs, saved, tmp_path, rng):
    fake_run(tmp_path / "run", epochs, rng)
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert sorted(saved) == ["curves.png", "filters.png"]
    assert [p for name, fig in saved.items() for p in problems(name, fig)] == []
    (accuracy,) = [ax for ax in saved["curves.png"].axes if ax.get_title() == "accuracy"]
    assert [text.get_text() for text in accuracy.get_legend().get_texts()] == [
        "train", "test", "train steps (dropout, augmentation on)"]  # fmt: skip


def test_the_misclassified_digits_are_legible(saved, tmp_path, rng):
    images = rng.integers(0, 256, (12, 1, 28, 28)).astype(np.uint8)
    viz.save_misclassified(tmp_path / "wrong.png", images, rng.integers(0, 10, 12),
                           rng.integers(0, 10, 12))  # fmt: skip
    assert problems("wrong.png", saved["wrong.png"]) == []
