"""``fastnet.run.state``: a checkpoint holds the configuration and the run's state beside
the arrays, reads back as it was written, and refuses what is not a training checkpoint
(naming the file) or does not fit its model and optimizer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fastnet import checkpoint, models, optim
from fastnet.config import TrainConfig
from fastnet.errors import CheckpointError, ConfigError
from fastnet.layers import SoftmaxCrossEntropy
from fastnet.run import state as run_state
from fastnet.run.state import Resume, RunState

CONFIG = TrainConfig(model="mlp", epochs=5, batch_size=16, optimizer="adam", lr=0.01, seed=3,
                     dtype="float64", val_split=0.25, augment="shift=1,rotate=5")  # fmt: skip


def trained(rng: np.random.Generator, hidden=(12,)):
    """A small float64 mlp and its Adam after two steps (the optimizer has state)."""
    model = models.mlp(np.random.default_rng(5), np.float64, hidden=hidden)
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(2):
        loss_fn(model(rng.random((8, 1, 28, 28))), rng.integers(0, 10, 8))
        model.backward(loss_fn.backward())
        opt.step()
    return model, opt


def progress(rng: np.random.Generator) -> RunState:
    """A mid-epoch state with every field away from its default."""
    gens = [np.random.default_rng(s) for s in (11, 12, 13, 14)]
    for g in gens:
        g.random(int(rng.integers(1, 50)))
    return RunState(
        epoch=3, step=4, shuffle_state=gens[0].bit_generator.state,
        model_rng_state=gens[1].bit_generator.state, augment_rng_state=gens[2].bit_generator.state,
        loss_sum=float(rng.random() * 100), correct=37, seen=64, train_seconds=12.5,
        best_accuracy=0.8125, world_size=2, replica_rng_states=[gens[3].bit_generator.state],
    )  # fmt: skip


def saved(path: Path, rng: np.random.Generator, config=CONFIG, state=None):
    model, opt = trained(rng)
    state = progress(rng) if state is None else state
    run_state.save(path, model, opt, config, state)
    return model, opt, state


def test_save_then_load_resume_gives_back_the_config_state_and_arrays(tmp_path, rng):
    model, opt, state = saved(tmp_path / "checkpoint.npz", rng)
    for where in (tmp_path / "checkpoint.npz", tmp_path, str(tmp_path)):  # the file or its folder
        resume = run_state.load_resume(where, None)
        assert resume.path == tmp_path / "checkpoint.npz"
        assert resume.config == CONFIG
        assert resume.state == state
        model_state, optim_state = resume.arrays
        for mine, theirs in ((model.state_dict(), model_state), (opt.state_dict(), optim_state)):
            assert mine.keys() == theirs.keys()
            for name in mine:
                np.testing.assert_array_equal(theirs[name], mine[name], err_msg=name)


def test_the_saved_generator_states_continue_the_same_streams(tmp_path, rng):
    gens = [np.random.default_rng([3, k]) for k in range(3)]
    for g in gens:
        g.random(int(rng.integers(1, 50)))
    names = ("shuffle_state", "model_rng_state", "augment_rng_state")
    states = {n: g.bit_generator.state for n, g in zip(names, gens, strict=True)}
    state = RunState(epoch=1, **states)
    saved(tmp_path / "c.npz", rng, state=state)
    loaded = run_state.load_resume(tmp_path / "c.npz", None).state
    for name, g in zip(names, gens, strict=True):
        again = np.random.default_rng()
        again.bit_generator.state = getattr(loaded, name)
        np.testing.assert_array_equal(again.random(5), g.random(5), err_msg=name)


def test_restore_puts_the_arrays_in_place(tmp_path, rng):
    model, opt, _ = saved(tmp_path / "c.npz", rng)
    fresh, fresh_opt = trained(np.random.default_rng(99))
    run_state.restore(run_state.load_resume(tmp_path / "c.npz", None), fresh, fresh_opt)
    for mine, theirs in ((model.state_dict(), fresh.state_dict()),
                         (opt.state_dict(), fresh_opt.state_dict())):  # fmt: skip
        for name in mine:
            np.testing.assert_array_equal(theirs[name], mine[name], err_msg=name)


@pytest.mark.parametrize("epochs", [3, 4, 9])
def test_epochs_replaces_the_saved_number(epochs, tmp_path, rng):
    saved(tmp_path / "c.npz", rng)  # 3 epochs done of 5
    resume = run_state.load_resume(tmp_path / "c.npz", epochs)
    assert resume.config == dataclasses.replace(CONFIG, epochs=epochs)
    assert resume.state.epoch == 3


NOTES = [  # (schedule, epochs of the run, --epochs, epochs done): the note, after its start
    ("cosine", 20, 3, 2, ": the cosine schedule is re-spread over 3 epochs (epoch 3 at lr "
                         "2.5e-04 instead of 9.8e-04)"),
    ("step", 8, 16, 4, ": the step schedule is re-spread over 16 epochs (epoch 5 at lr 1.0e-03 "
                       "instead of 1.0e-04)"),
    ("step", 8, 16, 1, ": the step schedule is re-spread over 16 epochs (epoch 2 at lr 1.0e-03)"),
    ("cosine", 5, 9, 5, ": the cosine schedule is re-spread over 9 epochs (epoch 6 at lr "
                        "4.1e-04)"),
    ("cosine", 5, 3, 3, ""),  # all done: nothing is trained on
    ("constant", 5, 9, 2, ""),
]  # fmt: skip


@pytest.mark.parametrize("schedule, epochs, new, done, note", NOTES)
def test_another_number_of_epochs_says_what_it_changes(schedule, epochs, new, done, note,
                                                       tmp_path, rng):  # fmt: skip
    config = dataclasses.replace(CONFIG, epochs=epochs, lr_schedule=schedule, lr=1e-3)
    saved(tmp_path / "c.npz", rng, config, RunState(epoch=done))
    resume = run_state.load_resume(tmp_path / "c.npz", new)
    assert resume.note == f"--epochs {new} changes the run from {epochs} to {new} epochs{note}"
    assert run_state.load_resume(tmp_path / "c.npz", epochs).note is None
    assert run_state.load_resume(tmp_path / "c.npz", None).note is None


def test_fewer_epochs_than_done_is_refused(tmp_path, rng):
    saved(tmp_path / "c.npz", rng)
    with pytest.raises(ConfigError, match="^epochs must be at least 3") as caught:
        run_state.load_resume(tmp_path / "c.npz", 2)
    assert str(tmp_path / "c.npz") in str(caught.value) and "got 2" in str(caught.value)
    with pytest.raises(ConfigError, match="^epochs must be an integer >= 1"):
        run_state.load_resume(tmp_path / "c.npz", 0)


def meta_of(rng: np.random.Generator) -> dict:
    return {"config": dataclasses.asdict(CONFIG), "state": dataclasses.asdict(progress(rng))}


def without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


# Metadata that is not that of a training checkpoint: meta -> meta'
BAD_META = {
    "no config": lambda m: without(m, "config"),
    "no state": lambda m: without(m, "state"),
    "config not a dict": lambda m: {**m, "config": ["mlp"]},
    "unknown config field": lambda m: {**m, "config": {**m["config"], "lrr": 0.1}},
    "bad config value": lambda m: {**m, "config": {**m["config"], "model": "resnet"}},
    "unknown state field": lambda m: {**m, "state": {**m["state"], "epochs": 1}},
    "state not a dict": lambda m: {**m, "state": 3},
    "negative step": lambda m: {**m, "state": {**m["state"], "step": -1}},
    "fractional epoch": lambda m: {**m, "state": {**m["state"], "epoch": 1.5}},
    "epoch as text": lambda m: {**m, "state": {**m["state"], "epoch": "2"}},
    "correct as bool": lambda m: {**m, "state": {**m["state"], "correct": True}},
    "seen null": lambda m: {**m, "state": {**m["state"], "seen": None}},
    "loss_sum as text": lambda m: {**m, "state": {**m["state"], "loss_sum": "0.5"}},
    "best_accuracy null": lambda m: {**m, "state": {**m["state"], "best_accuracy": None}},
}


@pytest.mark.parametrize("bad", BAD_META)
def test_metadata_of_no_training_run_is_refused_naming_the_file(bad, tmp_path, rng):
    model, opt = trained(rng)
    path = tmp_path / "c.npz"
    checkpoint.save(path, model.state_dict(), opt.state_dict(), BAD_META[bad](meta_of(rng)))
    with pytest.raises(CheckpointError, match="not a training checkpoint") as caught:
        run_state.load_resume(path, None)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_file_that_is_no_checkpoint_is_refused_naming_it(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError) as caught:
        run_state.load_resume(path, None)
    assert str(path) in str(caught.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        run_state.load_resume(tmp_path / "nothing", None)


def test_config_from_checkpoint_validates(tmp_path, rng):
    meta = meta_of(rng)
    assert run_state.config_from_checkpoint("x.npz", meta) == CONFIG
    meta["config"]["lr"] = -1.0
    with pytest.raises(CheckpointError, match=r"^x.npz: not a training checkpoint \(lr must"):
        run_state.config_from_checkpoint("x.npz", meta)


MISFITS = {
    "wider model": lambda: (models.mlp(np.random.default_rng(0), np.float64, hidden=(13,)),
                            optim.Adam),
    "deeper model": lambda: (models.mlp(np.random.default_rng(0), np.float64, hidden=(12, 12)),
                             optim.Adam),
    "other optimizer": lambda: (models.mlp(np.random.default_rng(0), np.float64, hidden=(12,)),
                                optim.SGD),
}  # fmt: skip


@pytest.mark.parametrize("misfit", MISFITS)
def test_restore_into_a_model_or_optimizer_it_does_not_fit_is_refused(misfit, tmp_path, rng):
    saved(tmp_path / "c.npz", rng)
    resume = run_state.load_resume(tmp_path / "c.npz", None)
    model, opt_class = MISFITS[misfit]()
    with pytest.raises(CheckpointError, match="does not fit its model and optimizer") as caught:
        run_state.restore(resume, model, opt_class(model.parameters(), lr=0.1))
    assert str(caught.value).startswith(f"{tmp_path / 'c.npz'}: ")


def test_restore_of_a_non_finite_weight_is_refused(tmp_path, rng):
    model, opt = trained(rng)
    weights = model.state_dict()
    first = next(iter(weights))
    weights[first][0, 0] = np.nan
    resume = Resume(tmp_path / "c.npz", CONFIG, RunState(), (weights, opt.state_dict()))
    with pytest.raises(CheckpointError, match="does not fit"):
        run_state.restore(resume, *trained(np.random.default_rng(1)))
