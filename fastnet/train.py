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

from fastnet import backend, checkpoint, inference, models, optim
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
    forward = inference.compile(model) if device == "cpu" else model
    preds = [
        np.argmax(backend.to_host(forward(backend.to(x, device))), axis=1)
        for x, _ in iterate_batches(images, labels, batch_size, shuffle=False)
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
    model_rng_state: dict | None = None  # dropout generator now
    augment_rng_state: dict | None = None  # augmentation generator now
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    best_accuracy: float = -1.0


class _Interrupt:
    """SIGINT sets a flag; the loop stops at the next step boundary and checkpoints."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _sigint_flag() -> Iterator[_Interrupt]:
    flag = _Interrupt()
    try:
        previous = signal.signal(signal.SIGINT, flag)
    except ValueError:  # not the main thread: no handler
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


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
        The metrics of the epochs run by this call.

    Raises
    ------
    ConfigError
        A bad configuration value (checked before any work starts).
    CheckpointError
        ``resume`` is not a training checkpoint that fits its model and optimizer.
    TrainingDiverged
        The loss or the weights became NaN or infinite; no checkpoint is written from
        then on, so the last one written holds finite weights.
    OSError
        A file of the run folder could not be written; a checkpoint being replaced is
        left as it was.
    """
    config.validate()
    state = _State()
    if resume is not None:
        path, config, state, saved = _load_resume(resume, epochs)
    model_rng = np.random.default_rng([config.seed, 0])
    model = models.build(config.model, model_rng, dropout=config.dropout).to(device)
    opt = make_optimizer(config, model.parameters())
    loss_fn = SoftmaxCrossEntropy()
    shuffle_rng = np.random.default_rng([config.seed, 2])
    augment_rng = np.random.default_rng([config.seed, 3])
    if resume is not None:
        _restore(path, saved, model, opt, state, (model_rng, augment_rng, shuffle_rng))
    (x_train, t_train), (x_test, t_test) = load_dataset(config.dataset, config.data_dir, log=log)
    (x_tr, t_tr), val = _split(config, x_train, t_train)
    x_ev, t_ev = val if val is not None else (x_test, t_test)
    eval_name = "val" if val is not None else "test"
    out = Path(out)
    if dry_run:
        return [_dry_run(model, loss_fn, opt, x_tr, t_tr, x_ev, t_ev, config, log)]
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.npz.*.tmp"):  # left by a process killed while saving
        stale.unlink(missing_ok=True)
    _keep_metrics(out / "metrics.jsonl", state.epoch)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    show = sys.stdout.isatty() if progress is None else progress

    def save(path: Path, where: str) -> None:
        """Write a checkpoint, unless the weights are no longer finite (then raise)."""
        weights, opt_state = model.state_dict(), opt.state_dict()
        bad = [k for k, v in [*weights.items(), *opt_state.items()] if not np.isfinite(v).all()]
        if bad:
            raise _diverged(f"{bad[0]} is not finite", where, config, out)
        state.model_rng_state = model_rng.bit_generator.state
        state.augment_rng_state = augment_rng.bit_generator.state
        meta = {"config": dataclasses.asdict(config), "state": dataclasses.asdict(state)}
        checkpoint.save(path, weights, opt_state, meta)

    if state.epoch >= config.epochs:
        log(f"nothing to do: all {config.epochs} epochs are done; pass more --epochs to go on")
    history = []
    with _sigint_flag() as interrupt:
        for epoch in range(state.epoch, config.epochs):
            if state.shuffle_state is not None:  # resuming: replay this epoch's order
                shuffle_rng.bit_generator.state = state.shuffle_state
            state.shuffle_state = shuffle_rng.bit_generator.state
            opt.lr = lr_at(config, epoch)
            model.train()
            batches = iterate_batches(x_tr, t_tr, config.batch_size, shuffle=True, rng=shuffle_rng)
            n_steps = math.ceil(len(x_tr) / config.batch_size)
            bar = _Bar(show, n_steps, state.step, f"epoch {epoch + 1}/{config.epochs}")
            t0 = time.perf_counter()
            for x, t in islice(batches, state.step, None):
                logits = model(backend.to(augment_batch(x, config.augment, augment_rng), device))
                loss = loss_fn(logits, t)
                if not math.isfinite(loss):
                    bar.close()
                    where = f"epoch {epoch + 1}, step {state.step + 1}"
                    raise _diverged(f"loss is {loss}", where, config, out)
                model.backward(loss_fn.backward())
                opt.step()
                state.step += 1
                state.loss_sum += loss * len(t)
                state.correct += int(np.sum(np.argmax(backend.to_host(logits), axis=1) == t))
                state.seen += len(t)
                bar.update(loss, state.seen / (state.train_seconds + time.perf_counter() - t0))
                every = config.checkpoint_every
                if interrupt.requested or (every and state.step % every == 0):
                    state.train_seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    save(out / "checkpoint.npz", f"epoch {epoch + 1}, step {state.step}")
                if interrupt.requested:
                    bar.close()
                    raise TrainingInterrupted(
                        f"interrupted at epoch {epoch + 1}, step {state.step}; checkpoint saved; "
                        f"resume with: fastnet train --resume {out / 'checkpoint.npz'}"
                    )
            bar.close()
            state.train_seconds += time.perf_counter() - t0
            acc, _ = evaluate(model, x_ev, t_ev)
            record = {
                "epoch": epoch + 1,
                "lr": opt.lr,
                "train_loss": state.loss_sum / state.seen,
                "train_accuracy": state.correct / state.seen,
                f"{eval_name}_accuracy": acc,
                "images_per_s": state.seen / state.train_seconds,
                "epoch_seconds": state.train_seconds,
            }
            history.append(record)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            log(
                f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.4f}  "
                f"train acc {record['train_accuracy']:.4f}  {eval_name} acc {acc:.4f}  "
                f"{record['images_per_s']:.0f} img/s  {state.train_seconds:.1f} s"
            )
            best = acc > state.best_accuracy
            state = _State(
                epoch=epoch + 1,
                shuffle_state=shuffle_rng.bit_generator.state,
                best_accuracy=max(acc, state.best_accuracy),
            )
            save(out / "checkpoint.npz", f"the end of epoch {epoch + 1}")
            if best:
                save(out / "best.npz", f"the end of epoch {epoch + 1}")
    return history


def _device_of(model: Module) -> str:
    """Where ``model``'s parameters live: ``"cpu"`` or ``"cuda"``."""
    params = model.parameters()
    return backend.device_of(params[0].data) if params else "cpu"


def _dry_run(model, loss_fn, opt, x_tr, t_tr, x_ev, t_ev, config, log) -> dict:
    x, t = next(iterate_batches(x_tr, t_tr, config.batch_size, shuffle=False))
    loss = loss_fn(model.train()(backend.to(x, _device_of(model))), t)
    model.backward(loss_fn.backward())
    opt.step()
    acc, _ = evaluate(model, x_ev[: config.batch_size], t_ev[: config.batch_size])
    log(f"dry run: one training batch {x.shape}, loss {loss:.4f}; eval batch accuracy {acc:.4f}")
    return {"train_loss": loss, "accuracy": acc}


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


def _restore(path: Path, saved, model: Module, opt: optim.Optimizer, state: _State, rngs) -> None:
    """Load the weights, optimizer state and generator states of a checkpoint into place."""
    model_state, optim_state = saved
    try:
        model.load_state_dict(model_state)
        opt.load_state_dict(optim_state)
        for rng, rng_state in zip(
            rngs, (state.model_rng_state, state.augment_rng_state, state.shuffle_state),
            strict=True,
        ):  # fmt: skip
            rng.bit_generator.state = rng_state
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
