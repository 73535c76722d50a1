"""``fastnet.config``: the defaults of a run, every field's check and message, the choice
tuples (in step with the models, datasets and optimizers that exist), a cheap import."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

import fastnet.data
import fastnet.models
from fastnet import config, optim, run
from fastnet.config import TrainConfig
from fastnet.errors import ConfigError

# The book's VGG-style network on MNIST with Adam, as ``fastnet train`` runs it without flags.
DEFAULTS = {
    "model": "vgg", "dataset": "mnist", "data_dir": None, "epochs": 20, "batch_size": 100,
    "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0,
    "lr_schedule": "cosine", "seed": 0, "val_split": 0.0, "limit": None,
    "checkpoint_every": 0, "augment": 0, "dropout": None, "dtype": "float32",
}  # fmt: skip


def test_defaults():
    defaults = TrainConfig()
    assert dataclasses.asdict(defaults) == DEFAULTS
    for name, value in DEFAULTS.items():
        assert config.default(name) == value and type(config.default(name)) is type(value), name
    defaults.validate()


SHIFT = "an integer shift in pixels from 0 to 8 or a spec like shift=2,rotate=10,scale=0.1,"
# (field, bad value, extra fields, the message's start)
BAD = [
    ("model", "resnet", {}, "model must be one of vgg, vgg-bn, simple, mlp, got 'resnet'"),
    ("model", None, {}, "model must be one of vgg, vgg-bn, simple, mlp, got None"),
    ("dataset", "cifar10", {}, "dataset must be one of mnist, fashion-mnist, got 'cifar10'"),
    ("data_dir", 3, {}, "data_dir must be a path or None, got 3"),
    ("epochs", 0, {}, "epochs must be an integer >= 1, got 0"),
    ("epochs", 2.0, {}, "epochs must be an integer >= 1, got 2.0"),
    ("epochs", True, {}, "epochs must be an integer >= 1, got True"),
    ("batch_size", 0, {}, "batch_size must be an integer >= 1, got 0"),
    ("batch_size", "100", {}, "batch_size must be an integer >= 1, got '100'"),
    ("optimizer", "lamb", {},
     "optimizer must be one of sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, got"),
    ("lr", 0.0, {}, "lr must be a finite number > 0, got 0.0"),
    ("lr", -1e-3, {}, "lr must be a finite number > 0, got -0.001"),
    ("lr", math.inf, {}, "lr must be a finite number > 0, got inf"),
    ("lr", math.nan, {}, "lr must be a finite number > 0, got nan"),
    ("lr", "0.1", {}, "lr must be a finite number > 0, got '0.1'"),
    ("momentum", 1.0, {}, "momentum must be in [0, 1), got 1.0"),
    ("momentum", -0.1, {}, "momentum must be in [0, 1), got -0.1"),
    ("momentum", math.nan, {}, "momentum must be in [0, 1), got nan"),
    ("weight_decay", -1e-4, {}, "weight_decay must be a finite number >= 0, got -0.0001"),
    ("weight_decay", math.inf, {}, "weight_decay must be a finite number >= 0, got inf"),
    ("lr_schedule", "linear", {},
     "lr_schedule must be one of constant, step, cosine, got 'linear'"),
    ("seed", -1, {}, "seed must be an integer >= 0, got -1"),
    ("seed", 1.5, {}, "seed must be an integer >= 0, got 1.5"),
    ("val_split", 1.0, {}, "val_split must be a fraction in [0, 1), got 1.0"),
    ("val_split", -0.2, {}, "val_split must be a fraction in [0, 1), got -0.2"),
    ("limit", 0, {}, "limit must be an integer >= 1, got 0"),
    ("limit", 10.0, {}, "limit must be an integer >= 1, got 10.0"),
    ("checkpoint_every", -1, {}, "checkpoint_every must be an integer >= 0, got -1"),
    ("checkpoint_every", None, {}, "checkpoint_every must be an integer >= 0, got None"),
    ("augment", 9, {}, f"augment must be {SHIFT}"),
    ("augment", -1, {}, f"augment must be {SHIFT}"),
    ("augment", True, {}, f"augment must be {SHIFT}"),
    ("augment", "wobble=3", {}, f"augment must be {SHIFT}"),
    ("dropout", 1.0, {}, "dropout must be None or a rate in [0, 1), got 1.0"),
    ("dropout", -0.5, {}, "dropout must be None or a rate in [0, 1), got -0.5"),
    ("dropout", "0.5", {}, "dropout must be None or a rate in [0, 1), got '0.5'"),
    ("dropout", 0.3, {"model": "mlp"},
     "dropout must be None for model 'mlp' (it has no Dropout layers), got 0.3"),
    ("dropout", 0.3, {"model": "simple"},
     "dropout must be None for model 'simple' (it has no Dropout layers), got 0.3"),
    ("dtype", "float16", {}, "dtype must be float32 or float64, got 'float16'"),
]  # fmt: skip


@pytest.mark.parametrize("field, value, extra, message", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_each_bad_value_is_refused_naming_the_field_and_what_is_expected(
    field, value, extra, message
):
    bad = TrainConfig(**extra, **{field: value})
    with pytest.raises(ConfigError) as caught:
        bad.validate()
    assert str(caught.value).startswith(message), str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_table_covers_every_field():
    assert {b[0] for b in BAD} == {f.name for f in dataclasses.fields(TrainConfig)}


def test_the_first_bad_field_is_named():
    with pytest.raises(ConfigError, match="^epochs must"):
        TrainConfig(epochs=0, lr=-1.0, dtype="int8").validate()


GOOD = [
    ("model", "vgg-bn"), ("model", "simple"), ("model", "mlp"), ("dataset", "fashion-mnist"),
    ("data_dir", "/data"), ("epochs", 1), ("epochs", np.int64(3)), ("batch_size", 1),
    ("optimizer", "nesterov"), ("lr", 2.5), ("lr", np.float64(0.1)), ("momentum", 0.0),
    ("weight_decay", 0.0), ("weight_decay", 5e-4), ("lr_schedule", "step"), ("seed", 2**40),
    ("val_split", 0.0), ("val_split", 0.99), ("limit", 1), ("checkpoint_every", 0),
    ("augment", 8), ("augment", "shift=2,rotate=10,scale=0.1,elastic=34:4"), ("dropout", 0.0),
    ("dropout", None), ("dtype", "float64"),
]  # fmt: skip


@pytest.mark.parametrize("field, value", GOOD, ids=[f"{g[0]}={g[1]!r}" for g in GOOD])
def test_good_values_pass(field, value):
    TrainConfig(**{field: value}).validate()


def test_importing_the_config_is_cheap():
    code = "import fastnet.config, sys; print('numpy' in sys.modules, 'numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_the_choices_are_the_models_and_datasets_that_exist():
    assert config.MODELS == tuple(fastnet.models.MODELS)
    assert config.DATASETS == fastnet.data.DATASETS
    assert set(config.MODELS_WITH_DROPOUT) == set(fastnet.models.WITH_DROPOUT)
    assert set(config.MODELS_WITH_DROPOUT) <= set(config.MODELS)


# Each optimizer name: the class it builds and the hyper-parameters it sets.
OPTIMIZERS = {
    "sgd": (optim.SGD, {"momentum": 0.0, "nesterov": False}),
    "momentum": (optim.SGD, {"momentum": 0.5, "nesterov": False}),
    "nesterov": (optim.SGD, {"momentum": 0.5, "nesterov": True}),
    "adagrad": (optim.Adagrad, {}),
    "rmsprop": (optim.RMSprop, {}),
    "adam": (optim.Adam, {"decoupled_weight_decay": False}),
    "adamw": (optim.AdamW, {"decoupled_weight_decay": True}),
}


def test_the_optimizer_choices_are_those_make_optimizer_builds(rng):
    assert config.OPTIMIZERS == tuple(OPTIMIZERS)
    params = fastnet.models.build("mlp", rng).parameters()
    for name, (cls, hyper) in OPTIMIZERS.items():
        chosen = TrainConfig(optimizer=name, lr=0.25, momentum=0.5, weight_decay=1e-3)
        chosen.validate()
        built = run.make_optimizer(chosen, params)
        assert type(built) is cls, name
        assert (built.lr, built.weight_decay) == (0.25, 1e-3), name
        for key, value in hyper.items():
            assert getattr(built, key) == value, (name, key)
    with pytest.raises(KeyError):
        run.make_optimizer(TrainConfig(optimizer="lamb"), params)


def test_each_lr_schedule_is_its_own():
    lrs = {s: [run.lr_at(TrainConfig(lr=0.8, epochs=4, lr_schedule=s), e) for e in range(4)]
           for s in config.LR_SCHEDULES}  # fmt: skip
    assert config.LR_SCHEDULES == ("constant", "step", "cosine")
    assert lrs["constant"] == [0.8] * 4
    assert lrs["step"] == pytest.approx([0.8, 0.8, 0.08, 0.008])
    assert lrs["cosine"] == pytest.approx([0.8, 0.4 * (1 + 0.5**0.5), 0.4, 0.4 * (1 - 0.5**0.5)])


def test_each_dtype_builds_its_model(rng):
    for name in config.DTYPES:
        model = run.make_model(TrainConfig(model="mlp", dtype=name), rng)
        assert {p.data.dtype for p in model.parameters()} == {np.dtype(name)}
