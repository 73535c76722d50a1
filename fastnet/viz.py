"""Pictures: training curves, first-layer filters, misclassified digits, and reading a
user's digit image for ``fastnet predict``. Needs the ``plot`` extra (matplotlib, Pillow).
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fastnet.errors import FastnetError, ImageError, MissingExtra

MAX_GRID = 100


def _require(module: str) -> Any:
    try:
        if module == "matplotlib":
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            return plt
        from PIL import Image

        return Image
    except ImportError:
        name = "Pillow" if module == "PIL" else module
        raise MissingExtra(f"this command needs {name}: pip install 'fastnet[plot]'") from None


def _read_grey(image_mod: Any, path: str | Path) -> np.ndarray:
    """Decode ``path`` as grey levels in [0, 1], float32 (H, W).

    Raises :class:`ImageError` naming the file, in one line, for anything Pillow cannot
    decode, and for an image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels: Pillow
    only warns up to twice that limit, but a digit that large is no digit, and decoding
    it would take over a gigabyte (a PNG of 15,000 x 15,000 pixels compresses to 30 KB).
    """
    limit = image_mod.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            with image_mod.open(path) as im:
                return np.asarray(im.convert("L"), dtype=np.float32) / 255
    except (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning):
        raise ImageError(
            f"{path}: the image is too large (more than {limit:,} pixels, Pillow's limit "
            "against decompression bombs, PIL.Image.MAX_IMAGE_PIXELS)"
        ) from None
    except image_mod.UnidentifiedImageError:
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        why = "an empty file" if empty else "not in an image format Pillow knows"
        raise ImageError(f"{path}: not a readable image ({why})") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        text = e.strerror if isinstance(e, OSError) and e.filename else None
        why = " ".join(str(text or e).split()) or type(e).__name__  # one line, whatever it says
        raise ImageError(f"{path}: not a readable image ({why})") from None


def load_digit(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG image as an MNIST-style digit.

    The image is converted to grey, inverted when its background is light (MNIST is
    white on black), cropped to the ink, scaled to fit 20x20 keeping the aspect ratio and
    centred by its centre of mass in a 28x28 frame, as MNIST was made.

    Parameters
    ----------
    path : str or Path
        An image file in any format Pillow reads, of at most ``PIL.Image.MAX_IMAGE_PIXELS``
        pixels.

    Returns
    -------
    ndarray float32 (1, 28, 28) in [0, 1].

    Raises
    ------
    ImageError
        The file is missing, not an image, truncated, in a mode that has no grey
        conversion, or too large; the message names the file (and the limit).
    """
    image_mod = _require("PIL")
    grey = _read_grey(image_mod, path)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1 - grey
    ink = np.argwhere(grey > 0.1)
    if len(ink) == 0:
        return np.zeros((1, 28, 28), np.float32)
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    crop = grey[top:bottom, left:right]
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = image_mod.fromarray((crop * 255).astype(np.uint8)).resize(
        size, image_mod.Resampling.LANCZOS
    )
    digit = np.asarray(small, dtype=np.float32) / 255
    frame = np.zeros((28, 28), np.float32)
    rows, cols = np.indices(digit.shape)
    mass = max(float(digit.sum()), 1e-6)
    cy, cx = (rows * digit).sum() / mass, (cols * digit).sum() / mass
    y0 = int(np.clip(round(14 - cy), 0, 28 - digit.shape[0]))
    x0 = int(np.clip(round(14 - cx), 0, 28 - digit.shape[1]))
    frame[y0 : y0 + digit.shape[0], x0 : x0 + digit.shape[1]] = digit
    return frame[None]


def _grid(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return max(1, int(np.ceil(n / cols))), max(1, cols)


def save_misclassified(
    path: str | Path, images: np.ndarray, labels: np.ndarray, pred: np.ndarray
) -> None:
    """Save up to ``MAX_GRID`` uint8 images (N, 1, 28, 28) titled "label -> prediction"."""
    plt = _require("matplotlib")
    n = min(len(images), MAX_GRID)
    rows, cols = _grid(n)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.25), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i, 0], cmap="gray")
            ax.set_title(f"{labels[i]}->{pred[i]}", fontsize=8, color="red")
    fig.suptitle("misclassified test images: label -> prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``curves.png`` and ``filters.png`` into a run folder; return their paths."""
    from fastnet import checkpoint

    plt = _require("matplotlib")
    run = Path(run_dir)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    try:
        records = [json.loads(line) for line in lines if line.strip()]
        epochs = [r["epoch"] for r in records]
        losses = [r["train_loss"] for r in records]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise FastnetError(f"{run / 'metrics.jsonl'}: not a fastnet metrics file ({e})") from None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, losses, marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="loss")
    for label, (values, style) in _accuracies(records).items():
        ax_acc.plot(epochs, values, style, marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()
    integer_epochs(ax_loss, ax_acc)
    fig.tight_layout()
    written = [run / "curves.png"]
    fig.savefig(written[0], dpi=100)
    plt.close(fig)

    model_state, _, _ = checkpoint.load(run / "checkpoint.npz")
    first = next((v for k, v in model_state.items() if k.endswith("weight") and v.ndim == 4), None)
    if first is not None:
        rows, cols = _grid(first.shape[0])
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < first.shape[0]:
                ax.imshow(first[i, 0], cmap="gray_r", interpolation="nearest")
        fig.suptitle("first-layer filters")
        fig.savefig(run / "filters.png", dpi=100)
        plt.close(fig)
        written.append(run / "filters.png")
    return written


def _accuracies(records: list[dict]) -> dict[str, tuple[list[float], str]]:
    """``{label: (accuracy per epoch, line style)}`` of the metrics ``records``: training
    accuracy in eval mode, the validation or test accuracy, and the running accuracy of the
    training steps (dropout and augmentation on), labelled as such. A line without
    ``running_train_accuracy`` (written before fastnet measured the training accuracy in eval
    mode) holds the running one as ``train_accuracy``."""
    nan = float("nan")
    new = [r if "running_train_accuracy" in r else {} for r in records]
    curves = {
        "train": ([r.get("train_accuracy", nan) for r in new], "-"),
        "val": ([r.get("val_accuracy", nan) for r in records], "-"),
        "test": ([r.get("test_accuracy", nan) for r in records], "-"),
        "train steps (dropout, augmentation on)": (
            [r.get("running_train_accuracy", r.get("train_accuracy", nan)) for r in records],
            ":",
        ),
    }
    return {k: v for k, v in curves.items() if not np.isnan(v[0]).all()}


def integer_epochs(*axes: Any) -> None:
    """Tick the x axis of each of ``axes`` (epochs) at whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
