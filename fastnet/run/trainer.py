"""The objects of one training run and what happens around each step of the book's loop.

:class:`Trainer` builds the model (wrapped in :class:`~fastnet.distributed.DataParallel`),
the optimizer, the loss, the generators and the data from a configuration, and runs
:func:`fastnet.loop.train_one_epoch` once per epoch. Around it: the batches (shuffled,
augmented, this rank's shard, on the device), :meth:`Trainer.after_step` (the step's sums
over the ranks, the divergence check, progress, periodic checkpoints, a stop request), and
the end of an epoch (evaluation, metrics, checkpoints). In one process every collective is
a no-op and ``DataParallel`` is the model itself.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import islice
from typing import cast

import numpy as np

from fastnet import backend, distributed
from fastnet.config import TrainConfig
from fastnet.data import iterate_batches
from fastnet.data.augment import augment_batch
from fastnet.errors import CheckpointError, ConfigError, TrainingInterrupted
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.loop import Batch, evaluate, train_one_epoch
from fastnet.run import state as run_state
from fastnet.run.divergence import diverged, first_nonfinite
from fastnet.run.folder import RunFolder
from fastnet.run.progress import ProgressBar
from fastnet.run.recipe import load_data, lr_at, make_model, make_optimizer
from fastnet.run.signals import StopFlag
from fastnet.run.state import Resume, RunState

TRAIN_SAMPLE = 10_000  # training images whose accuracy (eval mode) each epoch reports


class Trainer:
    """A run's model, optimizer, loss, generators, data and state, on one rank."""

    def __init__(self, config: TrainConfig, state: RunState, device: str,
                 ranks: distributed.World, folder: RunFolder,
                 log: Callable[[str], None]) -> None:  # fmt: skip
        self.config, self.state, self.device, self.ranks, self.folder, self.log = (
            config, state, device, ranks, folder, log)  # fmt: skip
        if ranks.size > 1 and device != "cpu":
            raise ranks.agreed(ConfigError("training on several processes runs on the CPU: "
                                           "pass --device cpu"))  # fmt: skip
        self.model_rng = np.random.default_rng([config.seed, 0])
        self.model = make_model(config, self.model_rng).to(device)
        self.opt = make_optimizer(config, self.model.parameters())
        self.shuffle_rng = np.random.default_rng([config.seed, 2])
        self.augment_rng = np.random.default_rng([config.seed, 3])
        self.parallel = distributed.DataParallel(self.model, ranks)
        self.loss_fn = self.parallel.criterion(SoftmaxCrossEntropy().to(device))
        self.data = load_data(config, ranks, log)
        self.clock = time.perf_counter()

    def restore(self, resume: Resume | None) -> None:
        """Load a checkpoint's arrays (rank 0) and generator states; under MPI, give every
        rank rank 0's weights and optimizer state, then check that all hold the same run."""
        if resume is not None and resume.arrays is not None:
            run_state.restore(resume, self.model, self.opt)
        distributed.broadcast(self.model, self.opt)
        self._set_generators(resume)
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

    def _set_generators(self, resume: Resume | None) -> None:
        """The checkpoint's generator states; the rank's own dropout stream under MPI."""
        state, ranks = self.state, self.ranks
        if state.model_rng_state is None:  # a new run
            if ranks.size > 1:
                self.model_rng.bit_generator.state = distributed.dropout_generator(
                    self.config.seed, ranks
                ).bit_generator.state
            return
        try:
            # None raises TypeError, caught below
            self.shuffle_rng.bit_generator.state = cast(dict, state.shuffle_state)
            self.augment_rng.bit_generator.state = cast(dict, state.augment_rng_state)
            if state.world_size == ranks.size:
                own = [state.model_rng_state, *state.replica_rng_states][ranks.rank]
            else:
                resumed_at = (state.epoch, state.step)
                own = distributed.dropout_generator(self.config.seed, ranks, resumed_at)
                own = own.bit_generator.state
            self.model_rng.bit_generator.state = own
        except (KeyError, TypeError, ValueError, IndexError) as e:
            path = None if resume is None else resume.path
            raise ranks.agreed(
                CheckpointError(f"{path}: does not fit its model and optimizer: {e}")
            ) from None

    def shards(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        """Each global batch augmented (the draws for all of it), this rank's shard of it,
        on the device."""
        for x, t in batches:
            mine = self.parallel.part(len(t))
            x = augment_batch(x, self.config.augment, self.augment_rng, rows=mine)
            yield backend.to(x, self.device), t[mine]

    def train_epoch(self, epoch: int, stop: StopFlag, terminal: bool) -> dict:
        """Train the rest of ``epoch`` (0-based), evaluate, checkpoint; return its metrics."""
        config, state = self.config, self.state
        if state.shuffle_state is not None:  # resuming: replay this epoch's order
            self.shuffle_rng.bit_generator.state = state.shuffle_state
        state.shuffle_state = self.shuffle_rng.bit_generator.state
        self.opt.lr = lr_at(config, epoch)
        x_tr, t_tr = self.data[:2]
        batches = iterate_batches(x_tr, t_tr, config.batch_size, shuffle=True,
                                  rng=self.shuffle_rng, dtype=config.dtype)  # fmt: skip
        n_steps = math.ceil(len(x_tr) / config.batch_size)
        bar = ProgressBar(terminal, n_steps, state.step, f"epoch {epoch + 1}/{config.epochs}")
        self.clock = time.perf_counter()
        try:
            train_one_epoch(self.parallel, self.loss_fn, self.opt,
                            self.shards(islice(batches, state.step, None)),
                            partial(self.after_step, epoch, stop, bar))  # fmt: skip
        finally:
            bar.close()
        state.train_seconds += time.perf_counter() - self.clock
        return self._end_epoch(epoch)

    def after_step(self, epoch: int, stop: StopFlag, bar: ProgressBar,
                   loss: float, correct: int, size: int) -> None:  # fmt: skip
        """After an update: the step's loss, correct predictions, images and stop requests
        summed over the ranks (one ``Allreduce``); stop if the loss diverged; count,
        show progress, checkpoint every ``checkpoint_every`` steps and on a stop request."""
        state, every = self.state, self.config.checkpoint_every
        sums = np.array([loss * size, correct, size, stop.requested], np.float64)
        self.ranks.allreduce(sums)
        loss_sum, correct, size, stops = float(sums[0]), int(sums[1]), int(sums[2]), sums[3]
        if not math.isfinite(loss_sum):
            where = f"epoch {epoch + 1}, step {state.step + 1}"
            raise self.ranks.agreed(diverged(f"loss is {loss_sum / size}", where,
                                             self.config.lr, self.folder.path))  # fmt: skip
        state.step, state.seen = state.step + 1, state.seen + size
        state.loss_sum += loss_sum
        state.correct += correct
        bar.update(loss_sum / size, state.seen / (state.train_seconds + self._lap(False)))
        if stops or (every and state.step % every == 0):
            state.train_seconds += self._lap(True)
            self.save(["checkpoint.npz"], f"epoch {epoch + 1}, step {state.step}")
        if stops:
            raise self._interrupted(epoch)

    def _lap(self, restart: bool) -> float:
        """Seconds since the clock was (re)started; ``restart``: start it again."""
        now = time.perf_counter()
        seconds = now - self.clock
        self.clock = now if restart else self.clock
        return seconds

    def evaluate(self, x: np.ndarray, t: np.ndarray) -> float:
        """Accuracy on ``(x, t)``: each rank predicts its part; the counts are summed."""
        mine = self.ranks.part(len(t))
        correct = 0
        if mine.stop > mine.start:
            _, pred = evaluate(self.model, x[mine], t[mine])
            correct = int(np.sum(pred == t[mine]))
        return self.ranks.sum_ints([correct])[0] / len(t)

    def _end_epoch(self, epoch: int) -> dict:
        """Evaluate, append the metrics line, checkpoint (and ``best.npz``).

        The training accuracy is measured as the evaluation's, in eval mode (no dropout, no
        augmentation, BatchNorm on its running statistics), on the first ``TRAIN_SAMPLE``
        training images; the accuracy of the training steps themselves, with dropout and
        augmentation on, is kept as ``running_train_accuracy``.
        """
        state, (x_tr, t_tr, x_ev, t_ev, eval_name) = self.state, self.data
        clock = time.perf_counter()
        train_acc = self.evaluate(x_tr[:TRAIN_SAMPLE], t_tr[:TRAIN_SAMPLE])
        acc = self.evaluate(x_ev, t_ev)
        record = {
            "epoch": epoch + 1,
            "lr": self.opt.lr,
            "train_loss": state.loss_sum / state.seen,
            "train_accuracy": train_acc,
            f"{eval_name}_accuracy": acc,
            "running_train_accuracy": state.correct / state.seen,
            "images_per_s": state.seen / state.train_seconds,
            "epoch_seconds": state.train_seconds,
            "eval_seconds": time.perf_counter() - clock,
            "processes": self.ranks.size,
        }
        self.folder.append_metrics(record)
        self.log(
            f"epoch {epoch + 1}/{self.config.epochs}  loss {record['train_loss']:.4f}  "
            f"train acc {record['train_accuracy']:.4f}  {eval_name} acc {acc:.4f}  "
            f"{record['images_per_s']:.0f} img/s  {state.train_seconds:.1f} s "
            f"+ {record['eval_seconds']:.1f} s eval"
        )
        best = acc > state.best_accuracy
        self.state = RunState(
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
        bad = first_nonfinite([*weights.items(), *opt_state.items()])
        if bad is not None:
            raise self.ranks.agreed(
                diverged(f"{bad} is not finite", where, self.config.lr, self.folder.path)
            )
        dropout_states = self.ranks.gather_json(self.model_rng.bit_generator.state)
        if dropout_states is None:  # not rank 0
            return
        state = self.state
        state.model_rng_state, *state.replica_rng_states = dropout_states
        state.augment_rng_state = self.augment_rng.bit_generator.state
        state.world_size = self.ranks.size
        for name in names:
            run_state.save(self.folder.path / name, self.model, self.opt, self.config, state)

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
        bar = ProgressBar(False, 1, 0, "dry run")
        step = partial(self.after_step, 0, StopFlag(), bar)
        train_one_epoch(self.parallel, self.loss_fn, self.opt, self.shards([(x, t)]), step)
        acc = self.evaluate(x_ev[:batch], t_ev[:batch])
        loss = self.state.loss_sum / len(t)
        self.log(f"dry run: one training batch {x.shape}, loss {loss:.4f}; "
            f"eval batch accuracy {acc:.4f}")  # fmt: skip
        return {"train_loss": loss, "accuracy": acc}
