"""Datasets for fastnet: IDX reader, MNIST / Fashion-MNIST download and cache, batches.

Files live in ``<root>/<name>/`` with ``<root>`` the ``data_dir`` argument, else
``$FASTNET_DATA_DIR``, else ``$XDG_CACHE_HOME/fastnet`` (default ``~/.cache/fastnet``),
and ``<name>`` one of :data:`DATASETS`.
"""

from fastnet.data.augment import random_shift
from fastnet.data.datasets import (
    DATASETS,
    FILES,
    dataset_dir,
    default_data_dir,
    iterate_batches,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
)
from fastnet.data.download import download_file
from fastnet.data.idx import read_idx

__all__ = [
    "DATASETS",
    "FILES",
    "dataset_dir",
    "default_data_dir",
    "download_file",
    "iterate_batches",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "random_shift",
    "read_idx",
]
