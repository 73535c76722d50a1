"""MNIST and Fashion-MNIST: load the IDX files (located by :mod:`fastnet.data.sources`),
iterate in batches.

Images stay in memory as uint8 ``(N, 1, 28, 28)`` and are converted to float in
``[0, 1]`` one batch at a time by :func:`iterate_batches`; :func:`load_mnist` and
:func:`load_fashion_mnist` keep the book's interface and convert everything at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fastnet.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from fastnet.data.sources import locate_dataset
from fastnet.errors import DataError

IMAGE_SIZE = 28
NUM_CLASSES = 10

Split = tuple[np.ndarray, np.ndarray]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Split, Split]:
    """Load a dataset as raw uint8 images and int64 labels.

    The files are looked up as :func:`fastnet.data.locate_dataset` says: ``data_dir``
    (or ``$FASTNET_DATA_DIR``), the user cache, then the copy bundled with fastnet
    (MNIST) or Debian's package folder (Fashion-MNIST); they are downloaded only when no
    copy is complete. Files found in a folder (``<name>.gz`` or the raw name without
    ``.gz``) are validated by format only; downloaded files are verified against their
    published md5 before they are kept.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Root folder with one subfolder per dataset, searched first.
    download : bool
        Fetch missing files from the mirrors in ``fastnet.data.download.MIRRORS`` when
        no copy is complete.
    progress : bool, optional
        Progress bar on stderr while downloading; by default only on a terminal.
    log : callable, optional
        Receives one line saying which copy is read (:meth:`Located.describe`).

    Returns
    -------
    ((x_train, t_train), (x_test, t_test))
        Images uint8 ``(N, 1, 28, 28)``, labels int64 ``(N,)`` in ``0..9``.

    Raises
    ------
    DataError
        A file is missing (and could not be downloaded) or malformed; the message names
        the file, or the folder and the four files to put there.
    """
    located = locate_dataset(name, data_dir, download=download, progress=progress)
    if log is not None:
        log(located.describe())
    paths = located.paths
    return _read_split(paths[0], paths[1]), _read_split(paths[2], paths[3])


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    normalize: bool = True,
    flatten: bool = False,
    one_hot_label: bool = False,
) -> tuple[Split, Split]:
    """MNIST in the book's format (``dataset/mnist.py`` of "Deep Learning from Scratch").

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Root folder with a ``mnist/`` subfolder, searched first; without one (and no
        ``$FASTNET_DATA_DIR``), the user cache, then the copy bundled with fastnet.
    download : bool
        Fetch missing files from the official mirrors when no copy is complete.
    normalize : bool
        Images as float32 in ``[0, 1]``; uint8 in ``0..255`` otherwise.
    flatten : bool
        Images as ``(N, 784)`` instead of ``(N, 1, 28, 28)`` (the book's default is
        True; here the NCHW layout that the conv layers take is the default).
    one_hot_label : bool
        Labels as float32 one-hot ``(N, 10)`` instead of int64 ``(N,)``.

    Returns
    -------
    ((x_train, t_train), (x_test, t_test))
        60,000 training and 10,000 test examples.
    """
    return _book_format("mnist", data_dir, download, normalize, flatten, one_hot_label)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    normalize: bool = True,
    flatten: bool = False,
    one_hot_label: bool = False,
) -> tuple[Split, Split]:
    """Fashion-MNIST in the same format as :func:`load_mnist` (subfolder ``fashion-mnist/``).

    Parameters and returns are those of :func:`load_mnist`.
    """
    return _book_format("fashion-mnist", data_dir, download, normalize, flatten, one_hot_label)


def iterate_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
    dtype: npt.DTypeLike = np.float32,
) -> Iterator[Split]:
    """Yield mini-batches, converting the uint8 images to float one batch at a time.

    Parameters
    ----------
    images : ndarray, uint8, (N, ...)
        E.g. ``(N, 1, 28, 28)`` from :func:`load_dataset`; never modified.
    labels : ndarray, integer, (N,)
    batch_size : int
        Examples per batch (the last batch may be smaller unless ``drop_last``).
    shuffle : bool
        Visit the examples in a random order drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Required when ``shuffle`` is True.
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.
    dtype : float32 or float64
        dtype of the image batches.

    Yields
    ------
    x : ndarray, ``dtype``, (B, ...)
        ``images[batch] / 255``, in ``[0, 1]``.
    t : ndarray, int64, (B,)
    """
    _check_batch_args(images, labels, batch_size, shuffle, rng)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"iterate_batches: dtype must be float32 or float64, got {dtype}")
    order = rng.permutation(len(images)) if shuffle and rng is not None else None
    return _batches(images, labels, batch_size, order, drop_last, dtype)


def random_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    count: int,
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.float32,
) -> Iterator[Split]:
    """Yield ``count`` mini-batches drawn as the book's chapter 4-6 loops draw them: each
    ``rng.choice(len(images), batch_size)`` (with replacement across and within batches).

    Parameters and yields as :func:`iterate_batches` (uint8 images in, ``dtype`` out).
    """
    _check_batch_args(images, labels, batch_size, False, None)
    dtype = np.dtype(dtype)
    for _ in range(count):
        idx = rng.choice(len(images), batch_size)
        yield _to_float(images[idx], dtype), labels[idx].astype(np.int64)


def _batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    order: np.ndarray | None,
    drop_last: bool,
    dtype: np.dtype,
) -> Iterator[Split]:
    n = len(images)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        sel = slice(start, end) if order is None else order[start:end]
        yield _to_float(images[sel], dtype), labels[sel].astype(np.int64)


def _check_batch_args(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool,
    rng: np.random.Generator | None,
) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim < 2:
        got = getattr(images, "dtype", type(images).__name__)
        raise DataError(f"iterate_batches: images must be a uint8 array (N, ...), got {got}")
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu" or labels.ndim != 1:
        got = getattr(labels, "dtype", type(labels).__name__)
        raise DataError(f"iterate_batches: labels must be an integer array (N,), got {got}")
    if len(labels) != len(images):
        raise DataError(
            f"iterate_batches: {len(images)} images but {len(labels)} labels (N must match)"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"iterate_batches: batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"iterate_batches: batch_size must be >= 1, got {batch_size}")
    if shuffle and not isinstance(rng, np.random.Generator):
        raise ValueError("iterate_batches: shuffle=True needs rng=np.random.default_rng(seed)")


def _to_float(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 images to ``dtype`` in [0, 1], bit-identical to the book's ``x / 255.0``."""
    return np.divide(images, dtype.type(255), dtype=dtype)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    out = np.zeros((len(labels), NUM_CLASSES), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def _book_format(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    normalize: bool,
    flatten: bool,
    one_hot_label: bool,
) -> tuple[Split, Split]:
    splits = load_dataset(name, data_dir, download=download)
    out = []
    for x, t in splits:
        if normalize:
            x = _to_float(x, np.dtype(np.float32))
        if flatten:
            x = x.reshape(len(x), -1)
        out.append((x, _one_hot(t) if one_hot_label else t))
    return out[0], out[1]


def _read_split(images_path: Path, labels_path: Path) -> Split:
    """Read and cross-check one images file and its labels file."""
    images = read_idx(images_path, magic=IMAGES_MAGIC)
    if len(images) == 0:
        raise DataError(f"{images_path}: holds no images (its header declares N = 0)")
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{images_path}: wrong dimensions: expected images (N, {IMAGE_SIZE}, {IMAGE_SIZE}),"
            f" found {images.shape}"
        )
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if len(labels) != len(images):
        raise DataError(
            f"count mismatch: {images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(
            f"{labels_path}: label values must be in 0..{NUM_CLASSES - 1}, found {labels.max()}"
        )
    return images.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.int64)
