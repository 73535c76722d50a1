"""Checksum-verified downloads from a list of mirrors (standard library only).

A download streams into a hidden temporary file in the target folder and is renamed
to its final name only after its length and md5 check out; on any failure the
temporary file is removed and the next mirror is tried. Names sent by a server
(redirects, ``Content-Disposition``) are never used as paths.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from fastnet.errors import DataError

# Base URLs tried in order; tests patch these (never reach the real mirrors from a test).
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    # Zalando's bucket: its REST endpoint serves https, the website endpoint only http.
    "fashion-mnist": (
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

# Published md5 of the official .gz files.
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 16


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    md5: str,
    *,
    progress: bool | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download one file, trying each URL in turn until one passes the checksum.

    Parameters
    ----------
    urls : sequence of str
        Full URLs of the same file on different mirrors, tried in order.
    dest : str or os.PathLike
        Final path; its folder must exist. Written only once the md5 matches.
    md5 : str
        Expected md5 hex digest of the downloaded bytes.
    progress : bool, optional
        Draw a progress bar on stderr; by default only when stderr is a terminal.
    timeout : float
        Seconds to wait on each network operation.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DataError
        When no URL delivered the file intact; the message lists each URL and why it
        failed. No partial or unverified file is left behind.
    """
    dest = Path(dest)
    show = sys.stderr.isatty() if progress is None else progress
    errors = []
    for url in urls:
        try:
            _fetch(url, dest, md5.lower(), show, timeout)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"  {url}: {exc}")
    raise DataError(f"could not download {dest.name} into {dest.parent}:\n" + "\n".join(errors))


def file_md5(path: str | os.PathLike[str]) -> str:
    """md5 hex digest of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        32 lowercase hex digits.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, md5: str, show: bool, timeout: float) -> None:
    """Stream ``url`` to a temporary file beside ``dest``, verify it, rename it."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = _content_length(response)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                size, digest = _copy(response, out, total, _Progress(url, total, show))
            if total is not None and size != total:
                raise DataError(f"connection closed after {size} of {total} bytes")
            if digest != md5:
                raise DataError(f"md5 mismatch: got {digest}, expected {md5}")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def _copy(src: BinaryIO, out: BinaryIO, total: int | None, bar: _Progress) -> tuple[int, str]:
    """Copy ``src`` to ``out``; return the byte count and the md5 hex digest."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            bar.update(size)
    finally:
        bar.close()
    return size, digest.hexdigest()


class _Progress:
    """A one-line progress bar on stderr, redrawn at most once per percent."""

    WIDTH = 30

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.total:
            step = done * 100 // self.total
            filled = done * self.WIDTH // self.total
            bar = f" [{'#' * filled}{'.' * (self.WIDTH - filled)}] {step:3d}%"
            text = f"{self.label}{bar} {done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
        else:
            step = done >> 20
            text = f"{self.label} {done / 1e6:.1f} MB"
        if step != self.last:
            self.last = step
            sys.stderr.write("\r" + text)
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()
