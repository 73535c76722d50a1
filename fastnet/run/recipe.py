"""What a :class:`~fastnet.config.TrainConfig` builds: the model, the optimizer, the
learning-rate schedule and the training and evaluation data."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fastnet import models, optim
from fastnet.config import TrainConfig
from fastnet.data import load_dataset
from fastnet.distributed import World
from fastnet.errors import ConfigError
from fastnet.module import Module

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]


def make_model(config: TrainConfig, rng: np.random.Generator) -> Module:
    """``config.model`` in ``config.dtype``, initial weights (and dropout masks) from ``rng``."""
    dtype = np.dtype(config.dtype).type
    return models.build(config.model, rng, dtype=dtype, dropout=config.dropout)


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


def split(config: TrainConfig, x: np.ndarray, t: np.ndarray) -> tuple:
    """``((x_train, t_train), (x_val, t_val) or None)``: the first ``config.limit`` images,
    a random ``config.val_split`` of them held out (drawn from ``[seed, 1]``)."""
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


def load_data(config: TrainConfig, ranks: World, log: Callable[[str], None]) -> Data:
    """``(x_train, t_train, x_eval, t_eval, eval_name)``: rank 0 reads (and downloads the
    dataset if needed) before the other ranks read theirs."""
    if not ranks.is_root:
        ranks.barrier()
    (x_train, t_train), (x_test, t_test) = load_dataset(config.dataset, config.data_dir, log=log)
    if ranks.is_root:
        ranks.barrier()
    (x_tr, t_tr), val = split(config, x_train, t_train)
    x_ev, t_ev = val if val is not None else (x_test, t_test)
    return x_tr, t_tr, x_ev, t_ev, "val" if val is not None else "test"
