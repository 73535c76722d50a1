"""Datasets for fastnet: IDX reader, where the files come from, download, batches.

A dataset ``<name>`` (one of :data:`DATASETS`) is read from the first complete folder of:
``<data_dir>/<name>`` (else ``$FASTNET_DATA_DIR/<name>``), the user cache
``$XDG_CACHE_HOME/fastnet/<name>`` (default ``~/.cache/fastnet``), then the MNIST copy
bundled with fastnet or Debian's ``/usr/share/datasets/fashion-mnist``; see
:mod:`fastnet.data.sources`.
"""

from fastnet.data.augment import random_shift
from fastnet.data.datasets import (
    iterate_batches,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    random_batches,
)
from fastnet.data.download import download_file
from fastnet.data.idx import read_idx
from fastnet.data.sources import (
    DATASETS,
    FILES,
    Located,
    cache_dir,
    dataset_dir,
    default_data_dir,
    download_dataset,
    locate_dataset,
)

__all__ = [
    "DATASETS",
    "FILES",
    "Located",
    "cache_dir",
    "dataset_dir",
    "default_data_dir",
    "download_dataset",
    "download_file",
    "iterate_batches",
    "load_dataset",
    "random_batches",
    "load_fashion_mnist",
    "load_mnist",
    "locate_dataset",
    "random_shift",
    "read_idx",
]
