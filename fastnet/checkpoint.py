"""Checkpoints: ``.npz`` files written atomically and read without pickle.

A checkpoint holds the model's ``state_dict`` (keys ``model/<name>``), the optimizer's
(keys ``optim/<name>``) and a JSON document of metadata (key ``meta``: format tag,
epoch, configuration, random-generator states, ...). Loading uses
``allow_pickle=False``; a file with object arrays or a pickle is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fastnet.errors import CheckpointError

FORMAT = "fastnet-checkpoint"
VERSION = 1


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    arrays = {f"model/{k}": np.asarray(v) for k, v in model_state.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optim_state.items()})
    document = {"format": FORMAT, "version": VERSION, **meta}
    arrays["meta"] = np.array(json.dumps(document))
    atomic_write(path, lambda f: np.savez(f, **arrays))


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
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise CheckpointError(
            f"{path}: refusing to load: the file contains pickled objects ({e})"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({e})") from None
    if "meta" not in arrays or arrays["meta"].dtype.kind != "U" or arrays["meta"].ndim != 0:
        raise CheckpointError(f"{path}: not a fastnet checkpoint (no metadata)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: not a fastnet checkpoint (bad metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastnet checkpoint (wrong format tag)")
    model_state, optim_state = {}, {}
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group not in ("model", "optim") or not name or value.dtype.kind not in "fiub":
            raise CheckpointError(f"{path}: unexpected entry {key!r} ({value.dtype})")
        (model_state if group == "model" else optim_state)[name] = value
    return model_state, optim_state, meta
