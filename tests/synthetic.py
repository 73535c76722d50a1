"""Small MNIST-like data written by the tests themselves (no dependence on real files).

Each class is a fixed random pattern of strokes; an image is its class pattern, shifted
by up to two pixels, at a random intensity, plus noise: learnable, but with 300 images an
MLP overfits it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnet.data import FILES
from fastnet.data.idx import IMAGES_MAGIC, LABELS_MAGIC


def _patterns(classes: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    grid = rng.random((classes, 7, 7)) < 0.3
    return np.kron(grid, np.ones((4, 4)))  # (classes, 28, 28) of 0/1 blocks


def digits(n: int, rng: np.random.Generator, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, 1, 28, 28) and int64 labels (n,)."""
    labels = rng.integers(0, classes, n)
    shifts = rng.integers(-2, 3, (n, 2))
    images = np.stack([np.roll(_patterns(classes)[c], tuple(s), (0, 1))
                       for c, s in zip(labels, shifts, strict=True)])  # fmt: skip
    images = images * rng.uniform(120, 255, (n, 1, 1)) + rng.normal(0, 90, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)[:, None], labels.astype(np.int64)


def _idx(magic: int, a: np.ndarray) -> bytes:
    dims = b"".join(d.to_bytes(4, "big") for d in a.shape)
    return magic.to_bytes(4, "big") + dims + a.astype(np.uint8).tobytes()


def write_dataset(root: Path, name: str, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Write ``root/name/`` with the four (uncompressed) IDX files; return ``root``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    parts = [*digits(n_train, rng), *digits(n_test, rng)]
    for file, part in zip(FILES, parts, strict=True):
        magic = IMAGES_MAGIC if part.ndim == 4 else LABELS_MAGIC
        data = part[:, 0] if part.ndim == 4 else part
        (folder / file.removesuffix(".gz")).write_bytes(_idx(magic, data))
    return Path(root)
