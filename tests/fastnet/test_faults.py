"""Faults: SIGKILL at any moment, Ctrl-C, a diverging loss, a full disk or a read-only
folder never cost a loadable checkpoint, and resuming loses at most ``--checkpoint-every``
steps: the resumed run ends with the same weights as an uninterrupted one.

The killed and interrupted runs are real subprocesses (``fastnet.cli.main`` behind a small
hook script that counts steps and checkpoint writes); the other faults are injected with
monkeypatch in this process.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest
import threadpoolctl

from fastnet import checkpoint, optim
from fastnet.cli import main
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.run import trainer

EVERY = 2  # --checkpoint-every
STEPS = 5  # steps per epoch: 180 training images in batches of 40
EPOCHS = 2
# One thread: bit-identical results need the same count in every run, and on a busy
# 2-core machine a 2-thread BLAS made each small matrix product ~30x slower.
RUN = ["--model", "mlp", "--limit", "240", "--batch-size", "40", "--val-split", "0.25",
       "--seed", "5", "--epochs", str(EPOCHS), "--checkpoint-every", str(EVERY),
       "--threads", "1"]  # fmt: skip

# Run in a subprocess as: python -c CHILD MODE K fastnet-arguments...
# MODE "kill-mid-write" / "kill-before-rename" / "kill-after-rename": SIGKILL itself during
# its K-th write of checkpoint.npz; "sigint": print WAITING at the start of step K and wait
# for SIGINT; "slow": sleep 100 ms per step. Prints "STEP n" at the start of every step.
CHILD = r"""
import io, os, signal, sys, time
from pathlib import Path
from fastnet import checkpoint
from fastnet.cli import main
from fastnet.run import trainer

mode, k = sys.argv[1], int(sys.argv[2])
count = {"steps": 0, "writes": 0}
shift, atomic_write, replace = trainer.augment_batch, checkpoint.atomic_write, os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def step(x, max_shift, rng, **rows):
    count["steps"] += 1
    print("STEP", count["steps"], flush=True)
    if mode == "sigint" and count["steps"] == k:
        print("WAITING", flush=True)
        deadline = time.monotonic() + 60
        while not signal.getsignal(signal.SIGINT).requested and time.monotonic() < deadline:
            time.sleep(0.01)
    if mode == "slow":
        time.sleep(0.1)
    return shift(x, max_shift, rng, **rows)

def write_half_then_die(write):
    def half(f):
        buffer = io.BytesIO()
        write(buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())
        die()
    return half

def hooked_atomic_write(path, write):
    if Path(path).name == "checkpoint.npz":
        count["writes"] += 1
        if count["writes"] == k and mode == "kill-mid-write":
            write = write_half_then_die(write)
    atomic_write(path, write)

def hooked_replace(src, dst):
    armed = count["writes"] == k and Path(dst).name == "checkpoint.npz"
    if armed and mode == "kill-before-rename":
        die()
    replace(src, dst)
    if armed and mode == "kill-after-rename":
        die()

trainer.augment_batch = step
checkpoint.atomic_write = hooked_atomic_write
os.replace = hooked_replace
sys.exit(main(sys.argv[3:]))
"""


def start_child(mode: str, k: int, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(k), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(child: subprocess.Popen, wanted: str) -> list[str]:
    """Read the child's stdout up to and including the line ``wanted``; return the lines."""
    lines = []
    for line in child.stdout:
        lines.append(line.rstrip("\n"))
        if lines[-1] == wanted:
            return lines
    child.wait(timeout=60)
    pytest.fail(f"child ended without printing {wanted!r}: {lines[-5:]} {child.stderr.read()}")


def progress(path: Path) -> int:
    """Training steps done in the checkpoint ``path`` (fails if it does not load)."""
    _, _, meta = checkpoint.load(path)
    return meta["state"]["epoch"] * STEPS + meta["state"]["step"]


def final_weights(out: Path) -> dict[str, np.ndarray]:
    model_state, _, meta = checkpoint.load(out / "checkpoint.npz")
    assert meta["state"]["epoch"] == EPOCHS
    return model_state


def assert_same_weights(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def steps_started(stdout: str) -> int:
    return max((int(line.split()[1]) for line in stdout.splitlines() if line.startswith("STEP")),
               default=0)  # fmt: skip


def temp_files(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def assert_clean_and_complete(out: Path, reference: dict) -> None:
    """Nothing lost: the reference's weights, one metrics line per epoch, no temp files."""
    assert_same_weights(final_weights(out), reference)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, EPOCHS + 1))
    assert not temp_files(out)


@pytest.fixture(scope="module", autouse=True)
def restore_threads():
    """``--threads 1`` pins this process's thread pools: give later tests theirs back."""
    numba_threads = numba.get_num_threads()
    blas_threads = max((lib["num_threads"] for lib in threadpoolctl.threadpool_info()), default=1)
    yield
    numba.set_num_threads(numba_threads)
    threadpoolctl.threadpool_limits(blas_threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, np.ndarray]:
    """Final weights of the uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", "--out", str(out), *RUN]) == 0
    return final_weights(out)


def train_args(out: Path) -> list[str]:
    return ["train", "--out", str(out), *RUN]


# ---------------------------------------------------------------- SIGKILL


# (mode, K-th write of checkpoint.npz, steps done when it is killed, steps in the checkpoint
# left): writes happen after steps 2, 4, 5 (end of epoch 1), 7, 9 and 10.
KILLS = [
    ("kill-mid-write", 5, 9, 7),
    ("kill-before-rename", 3, 5, 4),
    ("kill-after-rename", 3, 5, 5),
]


@pytest.mark.parametrize("mode, k, done, kept", KILLS, ids=[m[0] for m in KILLS])
def test_sigkill_while_saving_keeps_a_loadable_checkpoint(mode, k, done, kept, reference, tmp_path):
    out = tmp_path / "run"
    child = start_child(mode, k, train_args(out))
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL
    assert steps_started(stdout) == done
    assert progress(out / "checkpoint.npz") == kept
    assert done - kept <= EVERY
    assert bool(temp_files(out)) == (mode != "kill-after-rename")  # removed on resume
    assert main(["train", "--resume", str(out), "--threads", "1"]) == 0
    assert_clean_and_complete(out, reference)


def test_sigkill_at_a_random_moment_loses_at_most_checkpoint_every_steps(reference, tmp_path):
    out = tmp_path / "run"
    child = start_child("slow", 0, train_args(out))
    lines = wait_for_line(child, "STEP 5")
    delay = random.uniform(0.0, 0.4)
    time.sleep(delay)
    child.kill()
    done = steps_started("\n".join([*lines, child.communicate(timeout=60)[0]])) - 1
    assert done - progress(out / "checkpoint.npz") <= EVERY, f"killed {delay:.3f} s after step 5"
    assert main(["train", "--resume", str(out), "--threads", "1"]) == 0
    assert_clean_and_complete(out, reference)


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_saves_exits_cleanly_and_resumes_bit_identically(reference, tmp_path):
    out = tmp_path / "run"
    child = start_child("sigint", 8, train_args(out))
    wait_for_line(child, "WAITING")
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr  # the shell's code for "stopped by Ctrl-C"
    assert "Traceback" not in stderr
    resume = out / "checkpoint.npz"
    message = "interrupted at epoch 2, step 3; checkpoint saved; resume with: "
    assert message + f"fastnet train --resume {resume}" in stdout.splitlines()
    assert progress(resume) == 8  # the step under way when Ctrl-C came was completed
    assert main(["train", "--resume", str(resume), "--threads", "1"]) == 0
    assert_clean_and_complete(out, reference)


# ---------------------------------------------------------------- non-finite loss or weights


def test_diverging_loss_stops_with_epoch_step_and_advice(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*train_args(out), "--optimizer", "sgd", "--lr", "1e6"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loss is nan at epoch 1, step 3: training diverged and stopped" in err[0], err
    assert "try a lower --lr (now 1000000.0)" in err[0], err
    assert f"the last good checkpoint {out / 'checkpoint.npz'} is kept" in err[0], err
    model_state, _, _ = checkpoint.load(out / "checkpoint.npz")  # written after step 2
    assert all(np.isfinite(v).all() for v in model_state.values())


class NanLossAt(SoftmaxCrossEntropy):
    """The loss, NaN at the ``call``-th forward (counted over all instances)."""

    calls = 0
    call = 0

    def forward(self, logits, labels):
        loss = super().forward(logits, labels)
        NanLossAt.calls += 1
        return float("nan") if NanLossAt.calls == NanLossAt.call else loss


def nan_weights_at(monkeypatch, step: int) -> None:
    """Make the first weight NaN in the ``step``-th optimizer step (the loss stays finite)."""
    original, calls = optim.Adam.step, [0]

    def step_then_poison(self):
        original(self)
        calls[0] += 1
        if calls[0] == step:
            self.params[0].data[0, 0] = np.nan

    monkeypatch.setattr(optim.Adam, "step", step_then_poison)


# (injection, global step, message, steps in the checkpoint kept)
NANS = [("loss", 8, "loss is nan at epoch 2, step 3", 7),
        ("weights", 10, "1.weight is not finite at the end of epoch 2", 9)]  # fmt: skip


@pytest.mark.parametrize("inject, at, message, kept", NANS, ids=[n[0] for n in NANS])
def test_non_finite_values_never_overwrite_a_good_checkpoint(
    inject, at, message, kept, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    if inject == "loss":
        monkeypatch.setattr(NanLossAt, "call", at)
        monkeypatch.setattr(NanLossAt, "calls", 0)
        monkeypatch.setattr(trainer, "SoftmaxCrossEntropy", NanLossAt)
    else:
        nan_weights_at(monkeypatch, at)
    assert main(train_args(out)) == 1
    err = capsys.readouterr().err
    assert message in err and f"the last good checkpoint {out / 'checkpoint.npz'} is kept" in err
    assert progress(out / "checkpoint.npz") == kept
    for path in (out / "checkpoint.npz", out / "best.npz"):
        model_state, optim_state, _ = checkpoint.load(path)
        assert all(np.isfinite(v).all() for v in [*model_state.values(), *optim_state.values()])
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--threads", "1"]) == 0
    assert_clean_and_complete(out, reference)


# ---------------------------------------------------------------- disk full, read-only folder


class DiskFault:
    """Fail the ``k``-th write of checkpoint.npz with an OSError at one point of the atomic
    write: creating the temporary file (read-only folder), writing it or syncing it (disk
    full), or renaming it over the checkpoint. ``before`` holds the checkpoint's bytes then."""

    def __init__(self, monkeypatch, where: str, k: int) -> None:
        self.where, self.k, self.count = where, k, 0
        self.code = errno.EROFS if where == "create" else errno.ENOSPC
        self.before: bytes | None = None
        self.fds: set[int] = set()
        self.real = {"open": os.open, "fsync": os.fsync, "replace": os.replace, "savez": np.savez}
        monkeypatch.setattr(os, "open", self.open)
        monkeypatch.setattr(os, "fsync", self.fsync)
        monkeypatch.setattr(os, "replace", self.replace)
        monkeypatch.setattr(np, "savez", self.savez)

    def fail(self, where: str, path: object = None) -> None:
        if self.count == self.k and self.where == where:
            raise OSError(self.code, os.strerror(self.code), path)

    def open(self, path, flags, mode=0o777, **kwargs):
        if not Path(path).name.startswith(".checkpoint.npz."):
            return self.real["open"](path, flags, mode, **kwargs)
        self.count += 1
        if self.count == self.k:
            self.before = (Path(path).parent / "checkpoint.npz").read_bytes()
        self.fail("create", str(path))
        fd = self.real["open"](path, flags, mode, **kwargs)
        self.fds.add(fd)
        return fd

    def savez(self, f, **arrays):
        if self.count == self.k and self.where == "write":
            f.write(b"PK\x03\x04 half a checkpoint")
        self.fail("write")
        self.real["savez"](f, **arrays)

    def fsync(self, fd):
        if fd in self.fds:
            self.fail("fsync")
        self.real["fsync"](fd)

    def replace(self, src, dst):
        if Path(dst).name == "checkpoint.npz":
            self.fail("rename", str(dst))
        self.real["replace"](src, dst)


@pytest.mark.parametrize("where", ["create", "write", "fsync", "rename"])
def test_full_disk_or_read_only_folder_keeps_the_previous_checkpoint(
    where, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    fault = DiskFault(monkeypatch, where, k=4)  # the 4th write: after step 7, epoch 2 step 2
    assert main(train_args(out)) == 1
    monkeypatch.undo()
    reason = "Read-only file system" if where == "create" else "No space left on device"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"fastnet train: error: [Errno {fault.code}] could not write {out / 'checkpoint.npz'} "
        f"({reason}); the previous file is unchanged"
    ]
    assert (out / "checkpoint.npz").read_bytes() == fault.before
    assert progress(out / "checkpoint.npz") == 5
    assert not temp_files(out)
    assert main(["train", "--resume", str(out), "--threads", "1"]) == 0
    assert_clean_and_complete(out, reference)
