"""``fastnet.run.folder``: the run folder is created, cleaned of what a killed run left,
its metrics trimmed to the checkpoint resumed, its ``config.json`` written atomically; a run
is never clobbered; a folder that is not this rank's to write is never touched."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastnet import checkpoint
from fastnet.config import TrainConfig
from fastnet.errors import ConfigError
from fastnet.run.folder import RunFolder

CONFIG = TrainConfig(model="mlp", epochs=3, batch_size=40, lr=0.05, seed=7, augment="shift=1")


def metrics_line(epoch: int, rng: np.random.Generator) -> str:
    return json.dumps({"epoch": epoch, "train_loss": float(rng.random())}) + "\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def written_config(folder: Path, processes: int = 1) -> TrainConfig:
    """The configuration in ``folder/config.json``, once its ``processes`` is checked."""
    written = json.loads((folder / "config.json").read_text())
    assert written.pop("processes") == processes
    return TrainConfig(**written)


def test_prepare_creates_the_folder_and_writes_the_config(tmp_path):
    path = tmp_path / "runs" / "a"
    RunFolder(path).prepare(CONFIG, 0, resuming=False)
    assert sorted(p.name for p in path.iterdir()) == ["config.json"]
    text = (path / "config.json").read_text()
    changed = {"model": "mlp", "epochs": 3, "batch_size": 40, "lr": 0.05, "seed": 7,
               "augment": "shift=1"}  # fmt: skip
    assert json.loads(text) == {**dataclasses.asdict(TrainConfig()), **changed, "processes": 1}
    assert written_config(path) == CONFIG
    assert text.endswith("\n")


def test_the_config_says_how_many_processes_train(tmp_path):
    RunFolder(tmp_path).prepare(CONFIG, 0, resuming=False, processes=3)
    assert written_config(tmp_path, processes=3) == CONFIG


def test_prepare_replaces_the_config_of_a_resumed_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    later = dataclasses.replace(CONFIG, epochs=9)
    RunFolder(tmp_path).prepare(later, 2, resuming=True)
    assert written_config(tmp_path) == later


def test_a_config_with_numpy_numbers_is_written_as_json(tmp_path):
    """``validate`` accepts NumPy integers and floats (``_is_int``, ``_is_real``), so a run
    must be able to write them."""
    numbers = dataclasses.replace(CONFIG, epochs=np.int64(3), lr=np.float32(0.5),
                                  seed=np.uint32(7), limit=np.int32(100))  # fmt: skip
    numbers.validate()
    RunFolder(tmp_path).prepare(numbers, 0, resuming=False)
    written = json.loads((tmp_path / "config.json").read_text())
    assert (written["epochs"], written["lr"], written["seed"], written["limit"]) == (3, 0.5, 7, 100)


def test_prepare_removes_what_a_killed_writer_left_and_nothing_else(tmp_path):
    stale = [".checkpoint.npz.1a2b3c4d5e6f.tmp", ".x.npz.abc.tmp", ".config.json.00.tmp"]
    kept = ["notes.txt", "x.tmp", ".hidden", "best.npz.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
    RunFolder(tmp_path).prepare(CONFIG, 0, resuming=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "config.json"])
    assert all((tmp_path / name).read_bytes() == b"partial" for name in kept)


def test_prepare_keeps_the_metrics_of_the_epochs_done(tmp_path, rng):
    lines = [metrics_line(e, rng) for e in (1, 2, 3)]
    torn = metrics_line(4, rng)[:17]  # killed while appending
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    (tmp_path / "metrics.jsonl").write_text("".join(lines) + torn)
    RunFolder(tmp_path).prepare(CONFIG, 2, resuming=True)
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(lines[:2])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("foreign", ["[1, 2]\n", '{"loss": 0.5}\n', "not json\n", '"3"\n'])
def test_prepare_drops_lines_that_are_not_an_epochs_metrics(foreign, tmp_path, rng):
    lines = [metrics_line(1, rng), foreign, metrics_line(2, rng)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    RunFolder(tmp_path).prepare(CONFIG, 2, resuming=True)
    assert (tmp_path / "metrics.jsonl").read_text() == lines[0] + lines[2]


def test_metrics_already_in_step_are_left_as_they_are(tmp_path, rng):
    text = metrics_line(1, rng) + metrics_line(2, rng)
    (tmp_path / "metrics.jsonl").write_text(text)
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    before = (tmp_path / "metrics.jsonl").stat()
    RunFolder(tmp_path).prepare(CONFIG, 2, resuming=True)
    after = (tmp_path / "metrics.jsonl").stat()
    assert (tmp_path / "metrics.jsonl").read_text() == text
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_append_metrics_adds_one_json_line(tmp_path):
    folder = RunFolder(tmp_path)
    folder.prepare(CONFIG, 0, resuming=False)
    records = [{"epoch": 1, "test_accuracy": 0.5}, {"epoch": 2, "test_accuracy": 0.75}]
    for record in records:
        folder.append_metrics(record)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records


def test_a_new_run_into_a_folder_holding_a_checkpoint_is_refused(tmp_path, rng):
    (tmp_path / "checkpoint.npz").write_bytes(b"weights")
    (tmp_path / "config.json").write_text('{"old": true}\n')
    (tmp_path / "metrics.jsonl").write_text(metrics_line(1, rng) + metrics_line(2, rng))
    (tmp_path / ".checkpoint.npz.abc.tmp").write_bytes(b"partial")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="already holds a checkpoint") as caught:
        RunFolder(tmp_path).prepare(CONFIG, 0, resuming=False)
    assert str(tmp_path) in str(caught.value)
    assert snapshot(tmp_path) == before  # nothing touched
    RunFolder(tmp_path).prepare(CONFIG, 2, resuming=True)  # resuming it is fine
    assert written_config(tmp_path) == CONFIG


def test_a_folder_without_a_checkpoint_takes_a_new_run(tmp_path, rng):
    (tmp_path / "best.npz").write_bytes(b"weights")
    (tmp_path / "metrics.jsonl").write_text(metrics_line(1, rng))
    RunFolder(tmp_path).prepare(CONFIG, 0, resuming=False)
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # none of its epochs is done
    assert (tmp_path / "best.npz").read_bytes() == b"weights"


def test_a_folder_not_this_ranks_to_write_is_never_touched(tmp_path, rng):
    missing = tmp_path / "missing"
    RunFolder(missing, write=False).prepare(CONFIG, 0, resuming=False)
    RunFolder(missing, write=False).append_metrics({"epoch": 1})
    assert not missing.exists()
    (tmp_path / "checkpoint.npz").write_bytes(b"weights")
    (tmp_path / "metrics.jsonl").write_text(metrics_line(1, rng) + metrics_line(2, rng) + "{")
    (tmp_path / ".x.npz.abc.tmp").write_bytes(b"partial")
    before = snapshot(tmp_path)
    folder = RunFolder(tmp_path, write=False)
    folder.prepare(CONFIG, 1, resuming=True)
    folder.prepare(CONFIG, 0, resuming=False)
    folder.append_metrics({"epoch": 3})
    assert snapshot(tmp_path) == before


class TornFile:
    """A file whose ``write`` writes half of its data, then fails as a full disk does."""

    def __init__(self, file) -> None:
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.file, name)


def fail(*args, **kwargs):
    raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
def test_a_failed_write_leaves_the_previous_config(where, tmp_path, monkeypatch):
    RunFolder(tmp_path).prepare(CONFIG, 0, resuming=False)
    before = snapshot(tmp_path)
    if where == "write":
        monkeypatch.setattr(checkpoint, "open", lambda *a: TornFile(open(*a)), raising=False)
    else:
        monkeypatch.setattr(os, {"fsync": "fsync", "rename": "replace"}[where], fail)
    (tmp_path / "checkpoint.npz").write_bytes(b"weights")
    before["checkpoint.npz"] = b"weights"
    with pytest.raises(OSError):
        RunFolder(tmp_path).prepare(dataclasses.replace(CONFIG, epochs=8), 1, resuming=True)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # the old config.json, no temporary file
