"""Where the IDX files of a dataset come from: a folder named by the user, the user cache,
the copy bundled with fastnet (MNIST) or an operating-system package (Fashion-MNIST), or
a download from the official mirrors into the user cache.

The first of these folders that holds all four files is used (see :func:`locate_dataset`):

1. ``<data_dir>/<name>``, else ``$FASTNET_DATA_DIR/<name>`` when that is set;
2. the user cache ``$XDG_CACHE_HOME/fastnet/<name>`` (default ``~/.cache/fastnet/<name>``),
   where :func:`download_dataset` (``fastnet download``) puts the official files;
3. MNIST: the copy inside the package (``fastnet/data/mnist``; its NOTICE file says where
   it comes from), so MNIST never needs the network; Fashion-MNIST: the folder of Debian's
   ``dataset-fashion-mnist`` package, ``/usr/share/datasets/fashion-mnist``.

Only when none of them is complete are the missing files downloaded, into folder 1 (the
user cache when no folder is named). Checksums are verified on download, not on files
found in a folder: the bundled training images differ from the official file. A download
that fails removes the folders it created (when they hold no verified file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from fastnet.data import download as dl
from fastnet.errors import DataError

DATASETS = ("mnist", "fashion-mnist")
# The four standard file names, in the order (train images, train labels, test ...).
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Shipped inside the package (package data; see fastnet/data/NOTICE).
BUNDLED: dict[str, Path] = {"mnist": Path(__file__).resolve().parent / "mnist"}
BUNDLED_NOTE = (
    "the copy bundled with fastnet; its training images are within one grey level of the "
    "official ones, `fastnet download mnist` fetches those"
)
# Installed by an operating-system package: Debian's dataset-fashion-mnist.
SYSTEM: dict[str, Path] = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
SYSTEM_NOTE = "Debian's dataset-fashion-mnist package"


@dataclasses.dataclass(frozen=True)
class Located:
    """The four files of a dataset and where they were found.

    Attributes
    ----------
    name : str
        The dataset, one of :data:`DATASETS`.
    folder : pathlib.Path
        The folder that holds the files.
    paths : tuple of pathlib.Path
        The four files, in the order of :data:`FILES` (each ``.gz`` or raw).
    origin : str
        Which copy this is, in words (e.g. ``"the user cache"``).
    """

    name: str
    folder: Path
    paths: tuple[Path, ...]
    origin: str

    def describe(self) -> str:
        """One line for the user: ``data: <name> from <folder> (<origin>)``."""
        return f"data: {self.name} from {self.folder} ({self.origin})"


def cache_dir() -> Path:
    """Root of the user cache, where downloaded datasets are kept.

    Returns
    -------
    pathlib.Path
        ``$XDG_CACHE_HOME/fastnet`` when that is an absolute path, else ``~/.cache/fastnet``.
    """
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "fastnet"


def default_data_dir() -> Path:
    """Root folder that is searched first, and downloaded into, when no ``data_dir`` is given.

    Returns
    -------
    pathlib.Path
        ``$FASTNET_DATA_DIR`` if set, else :func:`cache_dir`.
    """
    if os.environ.get("FASTNET_DATA_DIR"):
        return Path(os.environ["FASTNET_DATA_DIR"]).expanduser()
    return cache_dir()


def dataset_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder searched first for dataset ``name``, and where missing files are downloaded.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Root folder with one subfolder per dataset; :func:`default_data_dir` if omitted.

    Returns
    -------
    pathlib.Path
        ``data_dir / name``.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}, expected one of {DATASETS}")
    root = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    return root / name


def locate_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
) -> Located:
    """Find the four files of dataset ``name``, downloading them only if no copy is complete.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Root folder with one subfolder per dataset, searched first; see the module
        docstring for the folders searched after it.
    download : bool
        When no folder holds all four files, fetch the missing ones into
        :func:`dataset_dir` from the mirrors in ``fastnet.data.download.MIRRORS``.
    progress : bool, optional
        Progress bar on stderr while downloading; by default only on a terminal.

    Returns
    -------
    Located
        The folder used, its four files and which copy it is.

    Raises
    ------
    DataError
        No folder holds the dataset and it could not (or may not) be downloaded; the
        message says where it looked and which files to put where.
    """
    candidates = _candidates(name, data_dir)
    for folder, origin in candidates:
        found = [_find(folder, file) for file in FILES]
        if all(found):
            return Located(name, folder, tuple(f for f in found if f is not None), origin)
    folder, origin = candidates[0]
    if not download:
        looked = ", ".join(str(f) for f, _ in candidates)
        missing = [file for file in FILES if _find(folder, file) is None]
        raise DataError(
            f"{name}: missing {', '.join(missing)} in {folder} (download=False; also looked "
            f"in {looked}). " + _put_files_hint(name, folder)
        )
    with _new_folder(name, folder):
        paths = tuple(
            _find(folder, file) or _download(name, folder, file, progress) for file in FILES
        )
    return Located(name, folder, paths, f"downloaded into {origin}")


def download_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Fetch the official files of dataset ``name`` (``fastnet download``).

    Files already in the folder are kept when their md5 is the published one; any other
    file of the four is downloaded, verified, and put in place atomically.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        Root folder; :func:`default_data_dir` (the user cache unless ``$FASTNET_DATA_DIR``
        is set) if omitted. The files go into its ``name`` subfolder.
    progress : bool, optional
        Progress bar on stderr; by default only on a terminal.
    log : callable, optional
        Receives one line per file (kept or downloaded).

    Returns
    -------
    pathlib.Path
        The folder that now holds the four official files.

    Raises
    ------
    DataError
        A file could not be downloaded intact from any mirror, or the folder cannot be
        created.
    """
    folder = dataset_dir(name, data_dir)
    with _new_folder(name, folder):
        for file in FILES:
            path = folder / file
            if path.is_file() and dl.file_md5(path) == dl.MD5[name][file]:
                status = "already there"
            else:
                _download(name, folder, file, progress)
                status = "downloaded"
            if log is not None:
                log(f"{name}: {file} {status} (md5 {dl.MD5[name][file]}, as published)")
    return folder


def _candidates(name: str, data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """The folders searched, in order, each with its origin in words."""
    first = dataset_dir(name, data_dir)
    if data_dir is not None:
        origin = "the folder given"
    elif os.environ.get("FASTNET_DATA_DIR"):
        origin = "$FASTNET_DATA_DIR"
    else:
        origin = "the user cache"
    candidates = [(first, origin)]
    if first != cache_dir() / name:
        candidates.append((cache_dir() / name, "the user cache"))
    if name in BUNDLED:
        candidates.append((BUNDLED[name], BUNDLED_NOTE))
    if name in SYSTEM:
        candidates.append((SYSTEM[name], SYSTEM_NOTE))
    return candidates


def _find(folder: Path, file: str) -> Path | None:
    """The gzipped file, else its raw (un-gzipped) name, else None."""
    for path in (folder / file, folder / file.removesuffix(".gz")):
        if path.is_file():
            return path
    return None


@contextlib.contextmanager
def _new_folder(name: str, folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents for a download; if the download fails,
    remove those it created that are still empty (a failed download leaves nothing new;
    a file that was verified is kept, for the next try)."""
    created = list(itertools.takewhile(lambda p: not p.exists(), (folder, *folder.parents)))
    try:
        _make_folder(name, folder)
        yield
    except BaseException:
        for path in created:  # the deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _make_folder(name: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {folder}: {exc}. " + _put_files_hint(name, folder)
        ) from None


def _download(name: str, folder: Path, file: str, progress: bool | None) -> Path:
    urls = [base.rstrip("/") + "/" + file for base in dl.MIRRORS[name]]
    try:
        return dl.download_file(urls, folder / file, dl.MD5[name][file], progress=progress)
    except DataError as exc:
        raise DataError(
            f"{name}: {exc}\nNo mirror worked (offline?). " + _put_files_hint(name, folder)
        ) from None


def _put_files_hint(name: str, folder: Path) -> str:
    hint = (
        f"Put these four files (gzip-compressed, or raw without .gz) into {folder}: "
        + ", ".join(FILES)
    )
    if name in SYSTEM:
        hint += f"; or install {SYSTEM_NOTE}, which puts them into {SYSTEM[name]}"
    return hint
