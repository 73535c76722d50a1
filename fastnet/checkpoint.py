"""Checkpoints: ``.npz`` files written atomically and read without pickle.

A checkpoint holds the model's ``state_dict`` (keys ``model/<name>``), the optimizer's
(keys ``optim/<name>``) and a JSON document of metadata (key ``meta``: format tag,
epoch, configuration, random-generator states, ...). Loading uses
``allow_pickle=False``; a file with object arrays or a pickle is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fastnet.errors import CheckpointError

FORMAT = "fastnet-checkpoint"
VERSION = 1
# First bytes of a zip archive (an .npz file): a local file header, or an empty archive.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename.

    A crash at any moment leaves either the old file or the new one, never a torn one;
    on an error the temporary file is removed and the old file is left as it was. The new
    file gets the usual permissions (``0o666`` less the umask), as ``open`` would give.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # best effort: some file systems cannot sync folders
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save(
    path: str | os.PathLike,
    model_state: dict[str, np.ndarray],
    optim_state: dict[str, np.ndarray],
    meta: dict[str, Any],
) -> None:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.npz`` file; its folder must exist.
    model_state : dict of str to ndarray
        ``model.state_dict()``.
    optim_state : dict of str to ndarray
        ``optimizer.state_dict()``.
    meta : dict
        JSON-serialisable metadata (epoch, config, RNG states, ...).
    """
    arrays: dict[str, Any] = {f"model/{k}": np.asarray(v) for k, v in model_state.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optim_state.items()})
    document = {"format": FORMAT, "version": VERSION, **meta}
    arrays["meta"] = np.array(json.dumps(document))
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as e:
        message = f"could not write {path} ({e.strerror or e}); the previous file is unchanged"
        raise (OSError(e.errno, message) if e.errno else OSError(message)) from e


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`.

    Returns
    -------
    (model_state, optim_state, meta)

    Raises
    ------
    CheckpointError
        The file is missing, unreadable, not an ``.npz``, holds pickled objects, or is
        not a fastnet checkpoint.
    """
    path = Path(path)
    arrays = _read_npz(path)
    meta = arrays.pop("meta", None)
    if meta is None or meta.dtype.kind != "U" or meta.ndim != 0:
        raise CheckpointError(f"{path}: not a fastnet checkpoint (no metadata)")
    try:
        meta = json.loads(str(meta))
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: not a fastnet checkpoint (bad metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastnet checkpoint (wrong format tag)")
    model_state: dict[str, np.ndarray] = {}
    optim_state: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group not in ("model", "optim") or not name or value.dtype.kind not in "fiub":
            raise CheckpointError(f"{path}: unexpected entry {key!r} ({value.dtype})")
        (model_state if group == "model" else optim_state)[name] = value
    return model_state, optim_state, meta


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every entry of the ``.npz`` file ``path``, read without pickle, as arrays."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if head not in ZIP_MAGIC:
        kinds = {b"\x93NUM": "a .npy array", b"": "an empty file"}
        kind = "a pickle" if head[:1] == b"\x80" else kinds.get(head, "not a zip archive")
        raise CheckpointError(f"{path}: not an .npz checkpoint ({kind})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(
                f"{path}: refusing to load: the file contains pickled objects (object arrays), "
                "which fastnet never unpickles"
            ) from None
        raise CheckpointError(f"{path}: corrupt .npz checkpoint ({e})") from None
    except (OSError, EOFError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            zlib.error) as e:  # fmt: skip
        raise CheckpointError(f"{path}: corrupt .npz checkpoint ({e})") from None
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a zip member that is not .npy data
            raise CheckpointError(f"{path}: unexpected entry {key!r} (not an array)")
    return arrays
