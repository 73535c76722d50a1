"""The run folder: ``config.json``, ``metrics.jsonl`` (a line per epoch), ``checkpoint.npz``
and ``best.npz``; every file written atomically, a finished run never clobbered."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fastnet.checkpoint import atomic_write
from fastnet.config import TrainConfig
from fastnet.errors import ConfigError


class RunFolder:
    """The folder ``path`` of a run; only the writer (rank 0 under MPI) touches it.

    Parameters
    ----------
    path : Path
    write : bool
        False on the ranks that only compute (every method then does nothing).
    """

    def __init__(self, path: Path, write: bool = True) -> None:
        self.path, self.write = path, write

    def prepare(
        self, config: TrainConfig, epochs_done: int, resuming: bool, processes: int = 1
    ) -> None:
        """Create the folder, remove what a killed run left, keep the metrics of the epochs
        done and write ``config.json``: the configuration's fields and ``"processes"``, the
        number of processes (MPI ranks) that train (the last part of a resumed run).

        Raises
        ------
        ConfigError
            A new run (not ``resuming``) into a folder that holds a checkpoint.
        """
        if not self.write:
            return
        if not resuming and (self.path / "checkpoint.npz").exists():
            raise ConfigError(f"{self.path} already holds a checkpoint: resume it or train "
                              "into another folder")  # fmt: skip
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp"):  # left by a process killed while writing
            stale.unlink(missing_ok=True)
        keep_metrics(self.path / "metrics.jsonl", epochs_done)
        text = json.dumps({**config.to_dict(), "processes": processes}, indent=2) + "\n"
        atomic_write(self.path / "config.json", lambda f: f.write(text.encode()))

    def append_metrics(self, record: dict) -> None:
        """Append one line to ``metrics.jsonl`` (a torn last line is dropped on resume)."""
        if self.write:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")


def keep_metrics(path: Path, epochs: int) -> None:
    """Keep only the metrics of the first ``epochs`` epochs (those in the checkpoint resumed:
    a crash after an epoch's metrics line but before its checkpoint leaves one too many)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = [line for line in lines if _epoch_of(line) <= epochs]
    if keep != lines:
        atomic_write(path, lambda f: f.write("".join(keep).encode()))


def _epoch_of(line: str) -> float:
    """The epoch of a metrics line; infinity for a torn or foreign line."""
    try:
        return float(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return math.inf
