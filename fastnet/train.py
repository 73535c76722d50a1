"""Training and evaluation as plain functions; the CLI is a thin layer over :func:`fit`.

A run folder receives ``config.json``, ``metrics.jsonl`` (one line per epoch),
``checkpoint.npz`` (the latest state: written atomically at the end of every epoch,
every ``checkpoint_every`` steps and on Ctrl-C) and ``best.npz`` (the model with the best
validation, or test, accuracy). ``fit(..., resume=path)`` continues exactly where the
checkpoint stopped: with the same seed and thread count, an interrupted-and-resumed run
ends with the same weights as an uninterrupted one. A checkpoint is never written with
NaN or infinite values: training stops with :class:`TrainingDiverged` instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from fastnet import backend, checkpoint, distributed, inference, models, optim
from fastnet.data import DATASETS, iterate_batches, load_dataset
from fastnet.data.augment import EXAMPLE, augment_batch, parse_augment
from fastnet.errors import (
    CheckpointError,
    ConfigError,
    TrainingDiverged,
    TrainingInterrupted,
)
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.module import Module

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
LR_SCHEDULES = ("constant", "step", "cosine")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    model: str = "vgg"
    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int = 20
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    seed: int = 0
    val_split: float = 0.0
    limit: int | None = None
    checkpoint_every: int = 0
    augment: int | str = 0  # see fastnet.data.augment: 2, or "shift=2,rotate=10,..."
    dropout: float | None = None  # drop rate of vgg's Dropout layers; None: the book's 0.5
    dtype: str = "float32"  # of the weights and the computation: float32 or float64

    def validate(self) -> None:
        """Raise ``ConfigError`` (a ``ValueError``) naming the first bad field and what is
        expected."""
        checks = [
            (isinstance(self.model, str) and self.model in models.MODELS, "model",
             f"one of {', '.join(models.MODELS)}"),
            (isinstance(self.dataset, str) and self.dataset in DATASETS, "dataset",
             f"one of {', '.join(DATASETS)}"),
            (self.data_dir is None or isinstance(self.data_dir, str), "data_dir", "a path or None"),
            (_is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1"),
            (_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (isinstance(self.optimizer, str) and self.optimizer in OPTIMIZERS, "optimizer",
             f"one of {', '.join(OPTIMIZERS)}"),
            (_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0, "lr",
             "a finite number > 0"),
            (_is_real(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (_is_real(self.weight_decay) and math.isfinite(self.weight_decay)
             and self.weight_decay >= 0, "weight_decay", "a finite number >= 0"),
            (isinstance(self.lr_schedule, str) and self.lr_schedule in LR_SCHEDULES,
             "lr_schedule", f"one of {', '.join(LR_SCHEDULES)}"),
            (_is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0"),
            (_is_real(self.val_split) and 0 <= self.val_split < 1, "val_split",
             "a fraction in [0, 1)"),
            (self.limit is None or (_is_int(self.limit) and self.limit >= 1), "limit",
             "an integer >= 1"),
            (_valid_augment(self.augment), "augment",
             f"an integer shift in pixels from 0 to 8 or a spec like {EXAMPLE}"),
            (_is_int(self.checkpoint_every) and self.checkpoint_every >= 0, "checkpoint_every",
             "an integer >= 0"),
            (self.dropout is None or (_is_real(self.dropout) and 0 <= self.dropout < 1),
             "dropout", "None or a rate in [0, 1)"),
            (self.dropout is None or self.model in models.WITH_DROPOUT, "dropout",
             f"None for model {self.model!r} (it has no Dropout layers)"),
            (self.dtype in ("float32", "float64"), "dtype", "float32 or float64"),
        ]  # fmt: skip
        for ok, name, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _valid_augment(v: Any) -> bool:
    try:
        return not isinstance(v, bool) and parse_augment(v) is not None
    except ValueError:
        return False


def _is_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def make_optimizer(config: TrainConfig, params: list) -> optim.Optimizer:
    """The optimizer named by ``config.optimizer`` (momentum/nesterov are SGD variants)."""
    lr, wd, mom = config.lr, config.weight_decay, config.momentum
    return {
        "sgd": lambda: optim.SGD(params, lr=lr, weight_decay=wd),
        "momentum": lambda: optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd),
        "nesterov": lambda: optim.SGD(params, lr=lr, momentum=mom, nesterov=True, weight_decay=wd),
        "adagrad": lambda: optim.Adagrad(params, lr=lr, weight_decay=wd),
        "rmsprop": lambda: optim.RMSprop(params, lr=lr, weight_decay=wd),
        "adam": lambda: optim.Adam(params, lr=lr, weight_decay=wd),
        "adamw": lambda: optim.AdamW(params, lr=lr, weight_decay=wd),
    }[config.optimizer]()


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``: constant, step (x0.1 at 1/2 and 3/4), cosine."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.lr_schedule == "step":
        return config.lr * 0.1 ** sum(epoch >= config.epochs * f for f in (0.5, 0.75))
    return config.lr


def evaluate(
    model: Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 100
) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` (in eval mode) on uint8 images; on the CPU through its
    inference plan (``fastnet.inference``).

    Returns
    -------
    (accuracy in [0, 1], predicted labels int64 (N,))
    """
    model.eval()
    device = _device_of(model)
    dtype = model.parameters()[0].data.dtype if model.parameters() else np.float32
    forward = inference.compile(model) if device == "cpu" else model
    preds = [
        np.argmax(backend.to_host(forward(backend.to(x, device))), axis=1)
        for x, _ in iterate_batches(images, labels, batch_size, shuffle=False, dtype=dtype)
    ]
    pred = np.concatenate(preds).astype(np.int64)
    return float(np.mean(pred == labels)), pred


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """``m[i, j]`` = number of examples of class ``i`` predicted as ``j``."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


@dataclasses.dataclass
class _State:
    """What a checkpoint restores besides the weights."""

    epoch: int = 0  # 0-based epoch in progress
    step: int = 0  # batches done in that epoch
    shuffle_state: dict | None = None  # shuffle generator at the start of the epoch
    model_rng_state: dict | None = None  # dropout generator now (of rank 0 under MPI)
    augment_rng_state: dict | None = None  # augmentation generator now
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    best_accuracy: float = -1.0
    world_size: int = 1  # processes that trained (MPI ranks)
    replica_rng_states: list = dataclasses.field(default_factory=list)  # ranks 1.. dropout


class _Interrupt:
    """SIGINT (under MPI: ``distributed.STOP_SIGNALS``) sets a flag; the loop stops at the
    next step boundary and checkpoints."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _stop_flag(signals: tuple[int, ...]) -> Iterator[_Interrupt]:
    """An :class:`_Interrupt` set by any of ``signals`` while the block runs."""
    flag = _Interrupt()
    try:
        previous = {s: signal.signal(s, flag) for s in signals}
    except ValueError:  # not the main thread: no handler
        yield flag
        return
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _split(config: TrainConfig, x: np.ndarray, t: np.ndarray):
    if config.limit is not None:
        x, t = x[: config.limit], t[: config.limit]
    n_val = int(round(len(x) * config.val_split))
    if n_val >= len(x):
        raise ConfigError(
            f"val_split {config.val_split} holds out {n_val} of {len(x)} images, "
            "leaving none for training"
        )
    if n_val == 0:
        return (x, t), None
    order = np.random.default_rng([config.seed, 1]).permutation(len(x))
    tr, va = order[n_val:], order[:n_val]
    return (x[tr], t[tr]), (x[va], t[va])


def fit(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: str | Path | None = None,
    epochs: int | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    progress: bool | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Train ``config.model`` on ``config.dataset``, writing the run folder ``out``.

    Under MPI (``mpirun -n N python -m mpi4py -m fastnet train``, see
    :mod:`fastnet.distributed`) every rank calls ``fit`` with the same arguments: each trains
    a replica on its shard of every global batch of ``config.batch_size``; rank 0 alone
    reads the checkpoint resumed, writes the run folder and logs.

    Parameters
    ----------
    config : TrainConfig
        Validated first; ignored when resuming (the checkpoint's config is used).
    out : path-like
        Run folder (created).
    resume : path-like, optional
        ``checkpoint.npz`` (or a run folder holding one) to continue from.
    epochs : int, optional
        With ``resume``: train up to this many epochs instead of the saved number.
    dry_run : bool
        Train one batch and evaluate one batch, write nothing.
    log : callable
        Receives one line per event (epoch summaries, checkpoint notes).
    progress : bool, optional
        A progress bar per epoch; default: when stdout is a terminal.
    device : {"cpu", "cuda"}
        Where to train, as resolved by ``fastnet.backend.resolve_device``. Not part of
        the configuration: checkpoints hold host arrays, so a run resumes on any device.

    Returns
    -------
    list of dict
        The metrics of the epochs run by this call (the same on every rank, but for the
        timings).

    Raises
    ------
    ConfigError
        A bad configuration value (checked before any work starts).
    CheckpointError
        ``resume`` is not a training checkpoint that fits its model and optimizer.
    DistributedError
        Under MPI: the ranks do not start from the same data, weights or configuration.
    TrainingDiverged
        The loss or the weights became NaN or infinite; no checkpoint is written from
        then on, so the last one written holds finite weights.
    OSError
        A file of the run folder could not be written; a checkpoint being replaced is
        left as it was.
    """
    config.validate()
    ranks = distributed.world()
    path, config, state, saved = _start(config, resume, epochs, ranks)
    log = log if ranks.is_root else _silent
    if resume is not None and state.world_size != ranks.size:
        log(f"resuming a run of {state.world_size} process(es) on {ranks.size}: the same "
            "global batches, re-sharded, and new dropout streams (bit-identical resumes need "
            "the same number of processes)")  # fmt: skip
    run = _Run(config, state, device, ranks, _Folder(Path(out), ranks.is_root), log)
    run.restore(path, saved)
    if dry_run:
        return [run.dry_run()]
    run.folder.prepare(config, state.epoch)
    if state.epoch >= config.epochs:
        log(f"nothing to do: all {config.epochs} epochs are done; pass more --epochs to go on")
    show = ranks.is_root and (sys.stdout.isatty() if progress is None else progress)
    signals = (signal.SIGINT,) if ranks.size == 1 else distributed.STOP_SIGNALS
    with _stop_flag(signals) as interrupt:
        return [run.train_epoch(e, interrupt, show) for e in range(state.epoch, config.epochs)]


def _silent(line: str) -> None:
    """The log of ranks other than 0."""


def _start(
    config: TrainConfig,
    resume: str | Path | None,
    epochs: int | None,
    ranks: distributed.World,
) -> tuple[Path | None, TrainConfig, _State, Any]:
    """``(path, config, state, saved)`` to start from: ``config`` and a fresh state, or the
    checkpoint ``resume`` (``saved``: its arrays), which rank 0 alone reads; the other ranks
    receive its path, configuration and state (their ``saved`` is None)."""
    path, state, saved = None, _State(), None
    if resume is not None and ranks.is_root:
        path, config, state, saved = _load_resume(resume, epochs)
    if resume is not None and ranks.size > 1:
        document = ranks.bcast_json(
            {"path": str(path), "config": dataclasses.asdict(config),
             "state": dataclasses.asdict(state)} if ranks.is_root else None
        )  # fmt: skip
        path = Path(document["path"])
        config, state = TrainConfig(**document["config"]), _State(**document["state"])
    return path, config, state, saved


class _Run:
    """The objects of a training run and its loop in small steps. What differs under MPI is
    a call on ``ranks`` at a few points (the shard, the gradient reduction, the evaluation
    counts, who writes), each a no-op in one process."""

    def __init__(
        self,
        config: TrainConfig,
        state: _State,
        device: str,
        ranks: distributed.World,
        folder: _Folder,
        log: Callable[[str], None],
    ) -> None:
        self.config, self.state, self.device, self.ranks, self.folder, self.log = (
            config, state, device, ranks, folder, log)  # fmt: skip
        if ranks.size > 1 and device != "cpu":
            raise ranks.agreed(ConfigError("training on several processes runs on the CPU: "
                                           "pass --device cpu"))  # fmt: skip
        self.model_rng = np.random.default_rng([config.seed, 0])
        self.model = models.build(
            config.model, self.model_rng, dtype=np.dtype(config.dtype).type, dropout=config.dropout
        ).to(device)
        self.opt = make_optimizer(config, self.model.parameters())
        self.loss_fn = SoftmaxCrossEntropy()
        self.shuffle_rng = np.random.default_rng([config.seed, 2])
        self.augment_rng = np.random.default_rng([config.seed, 3])
        self.reducer = None
        if ranks.size > 1:  # the gradients, the running statistics, (loss, correct, stop)
            self.reducer = distributed.Reducer(self.model, ranks, buffers=True, extras=3)
        self.data = _load_data(config, ranks, log)

    def restore(self, path: Path | None, saved: Any) -> None:
        """Load a checkpoint's arrays (rank 0) and generator states; under MPI, give every
        rank rank 0's weights and optimizer state, then check that all hold the same run."""
        if saved is not None:
            _restore(path, saved, self.model, self.opt)
        distributed.broadcast(self.model, self.opt)
        self._set_generators(path)
        if self.ranks.size > 1:  # the data folder may differ between machines, not the data
            configuration = {**dataclasses.asdict(self.config), "data_dir": None}
            distributed.check_replicas(
                self.ranks, configuration=configuration, data=self.data[:4],
                model=self.model.state_dict(), optimizer=self.opt.state_dict(),
                generators=[self.shuffle_rng.bit_generator.state,
                            self.augment_rng.bit_generator.state],
                progress=dataclasses.asdict(self.state),
            )  # fmt: skip
        if self.config.batch_size % self.ranks.size:  # checked once the ranks agree on it
            raise self.ranks.agreed(ConfigError(
                f"batch_size {self.config.batch_size} is the global batch: it must be a "
                f"multiple of the {self.ranks.size} processes"))  # fmt: skip

    def _set_generators(self, path: Path | None) -> None:
        """The checkpoint's generator states; the rank's own dropout stream under MPI."""
        state, ranks = self.state, self.ranks
        if state.model_rng_state is None:  # a new run
            if ranks.size > 1:
                self.model_rng.bit_generator.state = distributed.dropout_generator(
                    self.config.seed, ranks
                ).bit_generator.state
            return
        try:
            self.shuffle_rng.bit_generator.state = state.shuffle_state
            self.augment_rng.bit_generator.state = state.augment_rng_state
            if state.world_size == ranks.size:
                own = [state.model_rng_state, *state.replica_rng_states][ranks.rank]
            else:
                resumed_at = (state.epoch, state.step)
                own = distributed.dropout_generator(self.config.seed, ranks, resumed_at)
                own = own.bit_generator.state
            self.model_rng.bit_generator.state = own
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ranks.agreed(
                CheckpointError(f"{path}: does not fit its model and optimizer: {e}")
            ) from None

    def train_epoch(self, epoch: int, interrupt: _Interrupt, show: bool) -> dict:
        """Train the rest of ``epoch`` (0-based), evaluate, checkpoint; return its metrics."""
        config, state = self.config, self.state
        if state.shuffle_state is not None:  # resuming: replay this epoch's order
            self.shuffle_rng.bit_generator.state = state.shuffle_state
        state.shuffle_state = self.shuffle_rng.bit_generator.state
        self.opt.lr = lr_at(config, epoch)
        self.model.train()
        x_tr, t_tr = self.data[:2]
        batches = iterate_batches(x_tr, t_tr, config.batch_size, shuffle=True,
                                  rng=self.shuffle_rng, dtype=config.dtype)  # fmt: skip
        n_steps, every = math.ceil(len(x_tr) / config.batch_size), config.checkpoint_every
        bar = _Bar(show, n_steps, state.step, f"epoch {epoch + 1}/{config.epochs}")
        t0 = time.perf_counter()
        try:
            for x, t in islice(batches, state.step, None):
                loss_sum, correct, stop = self.step(x, t, interrupt, epoch)
                state.step, state.seen = state.step + 1, state.seen + len(t)
                state.loss_sum += loss_sum
                state.correct += correct
                elapsed = state.train_seconds + time.perf_counter() - t0
                bar.update(loss_sum / len(t), state.seen / elapsed)
                if stop or (every and state.step % every == 0):
                    state.train_seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.save(["checkpoint.npz"], f"epoch {epoch + 1}, step {state.step}")
                if stop:
                    raise self._interrupted(epoch)
        finally:
            bar.close()
        state.train_seconds += time.perf_counter() - t0
        return self._end_epoch(epoch)

    def step(
        self, x: np.ndarray, t: np.ndarray, interrupt: _Interrupt, epoch: int
    ) -> tuple[float, int, bool]:
        """One step on the global batch ``(x, t)``: this rank's shard forward and backward,
        the gradient reduction, the optimizer update.

        Returns
        -------
        (loss sum, correct predictions, stop requested), over the whole batch and all ranks.
        """
        mine = self.ranks.part(len(t))  # under MPI: the draws for all, the work for this part
        rows = {"rows": mine} if self.ranks.size > 1 else {}
        x, t_mine = augment_batch(x, self.config.augment, self.augment_rng, **rows), t[mine]
        loss_sum, correct = 0.0, 0
        if len(t_mine):
            logits = self.model(backend.to(x, self.device))
            loss_sum = self.loss_fn(logits, t_mine) * len(t_mine)
            self.model.backward(self.loss_fn.backward())
            correct = int(np.sum(np.argmax(backend.to_host(logits), axis=1) == t_mine))
        else:  # a last batch smaller than the number of ranks: this rank adds zeros
            self.opt.zero_grad()
        stop = interrupt.requested
        if self.reducer is not None:
            loss_sum, correct, stop = self.reducer(len(t_mine) / len(t), (loss_sum, correct, stop))
        if not math.isfinite(loss_sum):
            where = f"epoch {epoch + 1}, step {self.state.step + 1}"
            raise self.ranks.agreed(
                _diverged(f"loss is {loss_sum / len(t)}", where, self.config, self.folder.path)
            )
        self.opt.step()
        return float(loss_sum), int(correct), bool(stop)

    def evaluate(self, x: np.ndarray, t: np.ndarray) -> float:
        """Accuracy on ``(x, t)``: each rank predicts its part; the counts are summed."""
        mine = self.ranks.part(len(t))
        correct = 0
        if mine.stop > mine.start:
            _, pred = evaluate(self.model, x[mine], t[mine])
            correct = int(np.sum(pred == t[mine]))
        return self.ranks.sum_ints([correct])[0] / len(t)

    def _end_epoch(self, epoch: int) -> dict:
        """Evaluate, append the metrics line, checkpoint (and ``best.npz``)."""
        state, x_ev, t_ev, eval_name = self.state, *self.data[2:]
        acc = self.evaluate(x_ev, t_ev)
        record = {
            "epoch": epoch + 1,
            "lr": self.opt.lr,
            "train_loss": state.loss_sum / state.seen,
            "train_accuracy": state.correct / state.seen,
            f"{eval_name}_accuracy": acc,
            "images_per_s": state.seen / state.train_seconds,
            "epoch_seconds": state.train_seconds,
        }
        self.folder.append_metrics(record)
        self.log(
            f"epoch {epoch + 1}/{self.config.epochs}  loss {record['train_loss']:.4f}  "
            f"train acc {record['train_accuracy']:.4f}  {eval_name} acc {acc:.4f}  "
            f"{record['images_per_s']:.0f} img/s  {state.train_seconds:.1f} s"
        )
        best = acc > state.best_accuracy
        self.state = _State(
            epoch=epoch + 1,
            shuffle_state=self.shuffle_rng.bit_generator.state,
            best_accuracy=max(acc, state.best_accuracy),
        )
        names = ["checkpoint.npz", "best.npz"] if best else ["checkpoint.npz"]
        self.save(names, f"the end of epoch {epoch + 1}")
        return record

    def save(self, names: list[str], where: str) -> None:
        """Write the checkpoint files ``names`` (rank 0), unless the weights are no longer
        finite (then raise, on every rank: the replicas are identical)."""
        weights, opt_state = self.model.state_dict(), self.opt.state_dict()
        bad = [k for k, v in [*weights.items(), *opt_state.items()] if not np.isfinite(v).all()]
        if bad:
            raise self.ranks.agreed(
                _diverged(f"{bad[0]} is not finite", where, self.config, self.folder.path)
            )
        dropout_states = self.ranks.gather_json(self.model_rng.bit_generator.state)
        if dropout_states is None:  # not rank 0
            return
        state = self.state
        state.model_rng_state, *state.replica_rng_states = dropout_states
        state.augment_rng_state = self.augment_rng.bit_generator.state
        state.world_size = self.ranks.size
        meta = {"config": dataclasses.asdict(self.config), "state": dataclasses.asdict(state)}
        for name in names:
            checkpoint.save(self.folder.path / name, weights, opt_state, meta)

    def _interrupted(self, epoch: int) -> TrainingInterrupted:
        """The error that ends an interrupted run, once rank 0's checkpoint is written."""
        self.ranks.barrier()
        command = distributed.launch_command(self.ranks)
        return self.ranks.agreed(TrainingInterrupted(
            f"interrupted at epoch {epoch + 1}, step {self.state.step}; checkpoint saved; "
            f"resume with: {command} train --resume {self.folder.path / 'checkpoint.npz'}"
        ))  # fmt: skip

    def dry_run(self) -> dict:
        """Train one batch and evaluate one, write nothing."""
        x_tr, t_tr, x_ev, t_ev, _ = self.data
        batch = self.config.batch_size
        x, t = next(iterate_batches(x_tr, t_tr, batch, shuffle=False, dtype=self.config.dtype))
        loss_sum, _, _ = self.step(x, t, _Interrupt(), 0)
        acc = self.evaluate(x_ev[:batch], t_ev[:batch])
        loss = loss_sum / len(t)
        self.log(f"dry run: one training batch {x.shape}, loss {loss:.4f}; "
            f"eval batch accuracy {acc:.4f}")  # fmt: skip
        return {"train_loss": loss, "accuracy": acc}


def _load_data(config: TrainConfig, ranks: distributed.World, log: Callable[[str], None]) -> tuple:
    """``(x_train, t_train, x_eval, t_eval, eval_name)``: rank 0 reads (and downloads the
    dataset if needed) before the other ranks read theirs."""
    if not ranks.is_root:
        ranks.barrier()
    (x_train, t_train), (x_test, t_test) = load_dataset(config.dataset, config.data_dir, log=log)
    if ranks.is_root:
        ranks.barrier()
    (x_tr, t_tr), val = _split(config, x_train, t_train)
    x_ev, t_ev = val if val is not None else (x_test, t_test)
    return x_tr, t_tr, x_ev, t_ev, "val" if val is not None else "test"


class _Folder:
    """The run folder; rank 0 alone writes it (``write`` is False on the other ranks)."""

    def __init__(self, path: Path, write: bool) -> None:
        self.path, self.write = path, write

    def prepare(self, config: TrainConfig, epochs_done: int) -> None:
        """Create it, remove what a killed run left, keep the metrics of the epochs done."""
        if not self.write:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.npz.*.tmp"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        _keep_metrics(self.path / "metrics.jsonl", epochs_done)
        config_text = json.dumps(dataclasses.asdict(config), indent=2) + "\n"
        (self.path / "config.json").write_text(config_text)

    def append_metrics(self, record: dict) -> None:
        """One line of ``metrics.jsonl``."""
        if self.write:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")


def _device_of(model: Module) -> str:
    """Where ``model``'s parameters live: ``"cpu"`` or ``"cuda"``."""
    params = model.parameters()
    return backend.device_of(params[0].data) if params else "cpu"


def _keep_metrics(path: Path, epochs: int) -> None:
    """Keep only the metrics of the first ``epochs`` epochs (those in the checkpoint resumed:
    a crash after an epoch's metrics line but before its checkpoint leaves one too many)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = [line for line in lines if _epoch_of(line) <= epochs]
    if keep != lines:
        checkpoint.atomic_write(path, lambda f: f.write("".join(keep).encode()))


def _epoch_of(line: str) -> float:
    """The epoch of a metrics line; infinity for a torn or foreign line."""
    try:
        return float(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def _diverged(what: str, where: str, config: TrainConfig, out: Path) -> TrainingDiverged:
    last = out / "checkpoint.npz"
    kept = f"the last good checkpoint {last} is kept" if last.is_file() else "nothing was saved"
    return TrainingDiverged(
        f"{what} at {where}: training diverged and stopped; {kept}; "
        f"try a lower --lr (now {config.lr})"
    )


def config_from_checkpoint(path: str | Path, meta: dict) -> TrainConfig:
    """The validated :class:`TrainConfig` in a checkpoint's metadata.

    Raises
    ------
    CheckpointError
        The metadata holds no valid training configuration.
    """
    try:
        config = TrainConfig(**meta["config"])
        config.validate()
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a training checkpoint ({e})") from None
    return config


def _load_resume(resume: str | Path, epochs: int | None):
    """``(path, config, state, (model_state, optim_state))`` of a checkpoint to resume."""
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoint.npz"
    model_state, optim_state, meta = checkpoint.load(path)
    saved = config_from_checkpoint(path, meta)
    try:
        state = _State(**meta["state"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a training checkpoint ({e})") from None
    counts = [state.epoch, state.step, state.correct, state.seen]
    sums = [state.loss_sum, state.train_seconds, state.best_accuracy]
    if not (all(_is_int(v) and v >= 0 for v in counts) and all(map(_is_real, sums))):
        raise CheckpointError(f"{path}: not a training checkpoint (bad progress counters)")
    saved.epochs = saved.epochs if epochs is None else epochs
    saved.validate()
    if saved.epochs < state.epoch:
        raise ConfigError(
            f"epochs must be at least {state.epoch} (the epochs done in {path}), got {saved.epochs}"
        )
    return path, saved, state, (model_state, optim_state)


def _restore(path: Path, saved: Any, model: Module, opt: optim.Optimizer) -> None:
    """Load the weights and optimizer state of a checkpoint into place."""
    model_state, optim_state = saved
    try:
        model.load_state_dict(model_state)
        opt.load_state_dict(optim_state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: does not fit its model and optimizer: {e}") from None


class _Bar:
    """tqdm on a terminal; otherwise a plain line every tenth of the epoch."""

    def __init__(self, show: bool, total: int, initial: int, desc: str) -> None:
        self.total, self.n, self.desc = total, initial, desc
        self.tqdm = None
        if show:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, initial=initial, desc=desc, unit="batch")

    def update(self, loss: float, images_per_s: float) -> None:
        self.n += 1
        if self.tqdm is not None:
            self.tqdm.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}", refresh=False)
            self.tqdm.update(1)
        elif self.n % max(1, self.total // 10) == 0 and self.n < self.total:
            print(f"{self.desc} step {self.n}/{self.total}  loss {loss:.4f}  "
                  f"{images_per_s:.0f} img/s", flush=True)  # fmt: skip

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
