"""``fit(config, out)``: a whole training run, the book's loop with what a real run adds."""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from fastnet import distributed
from fastnet.config import TrainConfig
from fastnet.run.folder import RunFolder
from fastnet.run.signals import stop_flag
from fastnet.run.state import Resume, RunState, load_resume
from fastnet.run.trainer import Trainer


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
        Run folder (created; a folder holding a checkpoint is refused unless resuming).
    resume : path-like, optional
        ``checkpoint.npz`` (or a run folder holding one) to continue from.
    epochs : int, optional
        With ``resume``: train up to this many epochs instead of the saved number (which
        re-spreads a cosine or step schedule; the log says so first).
    dry_run : bool
        Train one batch and evaluate one batch, write nothing.
    log : callable
        Receives one line per event (epoch summaries, checkpoint notes; under MPI, first,
        the number of processes and their share of the global batch).
    progress : bool, optional
        A progress bar per epoch; default: when stdout is a terminal.
    device : {"cpu", "cuda", "reference"}
        Where to train, as resolved by ``fastnet.backend.resolve_device``. Not part of
        the configuration: checkpoints hold host arrays, so a run resumes on any device.

    Returns
    -------
    list of dict
        The metrics of the epochs run by this call, also appended to ``metrics.jsonl``
        (the same on every rank, but for the timings): ``epoch``, ``lr``, ``train_loss``,
        ``train_accuracy`` (in eval mode, on the first ``TRAIN_SAMPLE`` training images),
        ``val_accuracy`` or ``test_accuracy``, ``running_train_accuracy`` (of the
        training steps, with dropout and augmentation on), ``images_per_s``,
        ``epoch_seconds`` (training), ``eval_seconds`` (both evaluations), ``processes``.

    Raises
    ------
    ConfigError
        A bad configuration value (checked before any work starts), or a new run into a
        folder that holds a checkpoint.
    CheckpointError
        ``resume`` is not a training checkpoint that fits its model and optimizer.
    DistributedError
        Under MPI: the ranks do not start from the same data, weights or configuration.
    TrainingDiverged
        The loss or the weights became NaN or infinite; no checkpoint is written from
        then on, so the last one written holds finite weights.
    TrainingInterrupted
        Ctrl-C (under MPI also SIGTERM, SIGUSR1): stopped at a step, checkpoint written.
    OSError
        A file of the run folder could not be written; a checkpoint being replaced is
        left as it was.
    """
    config.validate()
    ranks = distributed.world()
    start = _resume_point(resume, epochs, ranks)
    config, state = (config, RunState()) if start is None else (start.config, start.state)
    log = log if ranks.is_root else _silent
    if start is not None and state.world_size != ranks.size:
        log(f"resuming a run of {state.world_size} process(es) on {ranks.size}: the same "
            "global batches, re-sharded, and new dropout streams (bit-identical resumes need "
            "the same number of processes)")  # fmt: skip
    if start is not None and start.note:
        log(start.note)
    trainer = Trainer(config, state, device, ranks, RunFolder(Path(out), ranks.is_root), log)
    trainer.restore(start)
    if ranks.size > 1:
        log(f"{ranks.size} processes, global batch {config.batch_size}, "
            f"{config.batch_size // ranks.size} per process")  # fmt: skip
    if dry_run:
        return [trainer.dry_run()]
    trainer.folder.prepare(config, state.epoch, resuming=start is not None, processes=ranks.size)
    if state.epoch >= config.epochs:
        log(f"nothing to do: all {config.epochs} epochs are done; pass more --epochs to go on")
    terminal = ranks.is_root and (sys.stdout.isatty() if progress is None else progress)
    signals = (signal.SIGINT,) if ranks.size == 1 else distributed.STOP_SIGNALS
    with stop_flag(signals) as stop:
        return [trainer.train_epoch(e, stop, terminal) for e in range(state.epoch, config.epochs)]


def _silent(line: str) -> None:
    """The log of ranks other than 0."""


def _resume_point(
    resume: str | Path | None, epochs: int | None, ranks: distributed.World
) -> Resume | None:
    """The checkpoint ``resume`` to start from (None: a new run), which rank 0 alone reads;
    the other ranks receive its path, configuration and state (not its arrays)."""
    if resume is None:
        return None
    start = load_resume(resume, epochs) if ranks.is_root else None
    if ranks.size > 1:
        document = ranks.bcast_json(
            {"path": str(start.path), "config": start.config.to_dict(),
             "state": dataclasses.asdict(start.state)} if start is not None else None
        )  # fmt: skip
        config, state = TrainConfig(**document["config"]), RunState(**document["state"])
        arrays, note = (start.arrays, start.note) if start else (None, None)
        start = Resume(Path(document["path"]), config, state, arrays, note)
    return start
