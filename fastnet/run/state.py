"""What a checkpoint holds besides the weights, and how a run resumes from one bit-exactly.

A checkpoint (``fastnet.checkpoint``: an ``.npz`` read without pickle) of a run holds the
model's and the optimizer's state and, as metadata, the :class:`TrainConfig` and the
:class:`RunState`: where in which epoch the run is, its random generators' states, the
running sums of the epoch. With the same seed and thread count, an interrupted-and-resumed
run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from fastnet import checkpoint
from fastnet.config import TrainConfig, _is_int, _is_real
from fastnet.errors import CheckpointError, ConfigError
from fastnet.module import Module
from fastnet.optim import Optimizer
from fastnet.run.recipe import lr_at


@dataclasses.dataclass
class RunState:
    """Where a run is (saved in every checkpoint's metadata)."""

    epoch: int = 0  # 0-based epoch in progress
    step: int = 0  # batches done in that epoch
    shuffle_state: Mapping[str, Any] | None = None  # shuffle generator at the start of the epoch
    model_rng_state: Mapping[str, Any] | None = None  # dropout generator now (of rank 0 under MPI)
    augment_rng_state: Mapping[str, Any] | None = None  # augmentation generator now
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    best_accuracy: float = -1.0
    world_size: int = 1  # processes that trained (MPI ranks)
    replica_rng_states: list = dataclasses.field(default_factory=list)  # ranks 1.. dropout


@dataclasses.dataclass
class Resume:
    """A checkpoint to continue from: its path, configuration, state and arrays."""

    path: Path
    config: TrainConfig
    state: RunState
    arrays: tuple[dict, dict] | None  # (model state, optimizer state); None off rank 0
    note: str | None = None  # what ``--epochs`` changes, in one line (rank 0)


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


def load_resume(resume: str | Path, epochs: int | None) -> Resume:
    """Read the checkpoint ``resume`` (or the one in the run folder ``resume``); ``epochs``,
    if given, replaces the saved number of epochs.

    Raises
    ------
    CheckpointError
        Not a training checkpoint.
    ConfigError
        ``epochs`` is fewer than the epochs already done.
    """
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoint.npz"
    model_state, optim_state, meta = checkpoint.load(path)
    saved = config_from_checkpoint(path, meta)
    try:
        state = RunState(**meta["state"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a training checkpoint ({e})") from None
    counts = [state.epoch, state.step, state.correct, state.seen]
    sums = [state.loss_sum, state.train_seconds, state.best_accuracy]
    if not (all(_is_int(v) and v >= 0 for v in counts) and all(map(_is_real, sums))):
        raise CheckpointError(f"{path}: not a training checkpoint (bad progress counters)")
    before = dataclasses.replace(saved)
    saved.epochs = saved.epochs if epochs is None else epochs
    saved.validate()
    if saved.epochs < state.epoch:
        raise ConfigError(
            f"epochs must be at least {state.epoch} (the epochs done in {path}), got {saved.epochs}"
        )
    note = epochs_note(before, saved, state.epoch)
    return Resume(path, saved, state, (model_state, optim_state), note)


def epochs_note(saved: TrainConfig, resumed: TrainConfig, done: int) -> str | None:
    """What resuming the run ``saved`` as ``resumed`` (another number of epochs) changes,
    after ``done`` epochs, in one line; None if nothing does.

    The learning-rate schedules are spread over the run's epochs, so a new number re-spreads
    a cosine or step schedule from the next epoch on.
    """
    old, new = saved.epochs, resumed.epochs
    if new == old:
        return None
    line = f"--epochs {new} changes the run from {old} to {new} epochs"
    if new > done and saved.lr_schedule != "constant":
        after = f"epoch {done + 1} at lr {lr_at(resumed, done):.1e}"
        before = lr_at(saved, done) if done < old else None
        if before is not None and before != lr_at(resumed, done):
            after += f" instead of {before:.1e}"
        line += f": the {saved.lr_schedule} schedule is re-spread over {new} epochs ({after})"
    return line


def restore(resume: Resume, model: Module, opt: Optimizer) -> None:
    """Load the checkpoint's weights and optimizer state into place."""
    model_state, optim_state = cast("tuple[dict, dict]", resume.arrays)  # rank 0's
    try:
        model.load_state_dict(model_state)
        opt.load_state_dict(optim_state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{resume.path}: does not fit its model and optimizer: {e}") from None


def save(path: Path, model: Module, opt: Optimizer, config: TrainConfig, state: RunState) -> None:
    """Write the checkpoint ``path`` of ``model``, ``opt``, ``config`` and ``state``."""
    meta = {"config": config.to_dict(), "state": dataclasses.asdict(state)}
    checkpoint.save(path, model.state_dict(), opt.state_dict(), meta)
