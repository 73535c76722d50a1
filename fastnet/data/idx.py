"""IDX file reader (the format of MNIST and Fashion-MNIST), gzip-compressed or raw.

An IDX file is a 4-byte magic number ``0x0000TTNN`` (``TT`` the element type code,
``NN`` the number of dimensions), ``NN`` big-endian uint32 sizes, then the elements
in C order, big-endian. Every malformed file raises :class:`~fastnet.errors.DataError`
whose message starts with the file's path and says what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fastnet.errors import DataError

# IDX element type code -> big-endian dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (N,)


def describe_magic(magic: int) -> str:
    """Human-readable meaning of an IDX magic number, e.g. ``0x00000803 (uint8, 3 dims)``."""
    dtype = IDX_TYPES.get((magic >> 8) & 0xFF)
    kind = dtype.name if dtype is not None and magic >> 16 == 0 else "not an IDX type"
    return f"0x{magic:08X} ({kind}, {magic & 0xFF} dims)"


def read_idx(path: str | os.PathLike[str], *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected from its content) or raw.

    Parameters
    ----------
    path : str or os.PathLike
        The file. A name ending in ``.gz`` must hold gzip data; other names may hold
        either.
    magic : int, optional
        The expected magic number, e.g. ``IMAGES_MAGIC`` (``0x00000803``) or
        ``LABELS_MAGIC`` (``0x00000801``). Any valid IDX magic is accepted if omitted.

    Returns
    -------
    ndarray
        A new writeable array with the shape given in the header and the element type
        in native byte order (``uint8`` for MNIST images and labels).

    Raises
    ------
    DataError
        Naming the file when it is missing, empty, not gzip though named ``.gz``, a
        corrupt or truncated gzip stream, has a wrong magic number, a truncated header,
        or fewer or more data bytes than its header declares.
    """
    path = Path(path)
    data = _decompressed_bytes(path)
    found, dims = _parse_header(path, data)
    if magic is not None and found != magic:
        raise DataError(
            f"{path}: wrong magic number {describe_magic(found)}, expected {describe_magic(magic)}"
        )
    dtype = IDX_TYPES[(found >> 8) & 0xFF]
    offset = 4 + 4 * len(dims)
    expected = math.prod(dims) * dtype.itemsize
    size = len(data) - offset
    if size != expected:
        problem = "truncated" if size < expected else "too long"
        raise DataError(
            f"{path}: {problem}: header declares shape {dims} of {dtype.name} "
            f"({expected} data bytes), but the file holds {size} data bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _decompressed_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it is gzip data."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not raw:
        raise DataError(f"{path}: file is empty")
    is_gzip = raw.startswith(GZIP_MAGIC)
    if path.suffix == ".gz" and not is_gzip:
        raise DataError(f"{path}: named .gz but is not gzip-compressed")
    if not is_gzip:
        return raw
    try:
        data = gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (the download was cut short?)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data: {exc}") from None
    if not data:
        raise DataError(f"{path}: empty after gzip decompression")
    return data


def _parse_header(path: Path, data: bytes) -> tuple[int, tuple[int, ...]]:
    """Validate the magic number and return it with the dimensions."""
    if len(data) < 4:
        raise DataError(f"{path}: truncated header: {len(data)} bytes, an IDX magic needs 4")
    found = int.from_bytes(data[:4], "big")
    ndim = found & 0xFF
    if found >> 16 != 0 or (found >> 8) & 0xFF not in IDX_TYPES or ndim == 0:
        raise DataError(
            f"{path}: wrong magic number {describe_magic(found)}: not an IDX file "
            f"(expected 0x0000TTNN, TT a type code such as 08 for uint8, NN >= 1 dims)"
        )
    end = 4 + 4 * ndim
    if len(data) < end:
        raise DataError(
            f"{path}: truncated header: {ndim} dims need {end} bytes, the file holds {len(data)}"
        )
    dims = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(4, end, 4))
    return found, dims
