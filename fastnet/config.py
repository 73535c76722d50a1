"""One training configuration: :class:`TrainConfig`, its defaults, its choices and checks.

The command line (``fastnet.cli``), the run (``fastnet.run``) and the experiments read the
defaults and the names of the models, datasets, optimizers, schedules, dtypes and devices
from here, and nowhere else. Importing this module is cheap (no NumPy, no Numba), so that
``fastnet --help`` can show the real defaults.
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral, Real
from typing import Any

from fastnet.errors import ConfigError

# The choices. ``fastnet.models.MODELS`` and ``fastnet.data.DATASETS`` hold the same names
# (a test keeps them in step); the optimizer names are those of ``run.make_optimizer``.
MODELS = ("vgg", "vgg-bn", "simple", "mlp")
MODELS_WITH_DROPOUT = ("vgg", "vgg-bn")  # their builders take ``dropout``
DATASETS = ("mnist", "fashion-mnist")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
LR_SCHEDULES = ("constant", "step", "cosine")
DTYPES = ("float32", "float64")
# Where to compute (not part of a run's configuration: a checkpoint resumes anywhere).
# ``auto``: cuda when there is a GPU, else cpu; ``reference``: the NumPy specification of
# every kernel (``kernels/<family>/reference.py``), slow, for reading and debugging.
DEVICES = ("auto", "cpu", "cuda", "reference")
AUGMENT_EXAMPLE = "shift=2,rotate=10,scale=0.1,elastic=34:4"


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    The defaults are the book's VGG-style network on MNIST with Adam, as ``fastnet train``
    runs it without flags.
    """

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

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready Python values (NumPy numbers, which ``validate``
        accepts, as Python numbers): what ``config.json`` and checkpoints hold."""
        fields = dataclasses.asdict(self).items()
        return {k: v.item() if hasattr(v, "item") else v for k, v in fields}

    def validate(self) -> None:
        """Raise ``ConfigError`` (a ``ValueError``) naming the first bad field and what is
        expected."""
        for name, (ok, expected) in _checks(self).items():
            if not ok:
                raise ConfigError(f"{name} must be {expected}, got {getattr(self, name)!r}")


def default(name: str) -> Any:
    """The default of the :class:`TrainConfig` field ``name``."""
    return TrainConfig.__dataclass_fields__[name].default


def _checks(c: TrainConfig) -> dict[str, tuple[bool, str]]:
    """Per field: whether ``c``'s value is valid, and what is expected (checked in order)."""
    dropout_ok = c.dropout is None or (_is_real(c.dropout) and 0 <= c.dropout < 1)
    return {
        "model": (_one_of(c.model, MODELS), f"one of {', '.join(MODELS)}"),
        "dataset": (_one_of(c.dataset, DATASETS), f"one of {', '.join(DATASETS)}"),
        "data_dir": (c.data_dir is None or isinstance(c.data_dir, str), "a path or None"),
        "epochs": (_is_int(c.epochs) and c.epochs >= 1, "an integer >= 1"),
        "batch_size": (_is_int(c.batch_size) and c.batch_size >= 1, "an integer >= 1"),
        "optimizer": (_one_of(c.optimizer, OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
        "lr": (_is_real(c.lr) and math.isfinite(c.lr) and c.lr > 0, "a finite number > 0"),
        "momentum": (_is_real(c.momentum) and 0 <= c.momentum < 1, "in [0, 1)"),
        "weight_decay": (_is_real(c.weight_decay) and math.isfinite(c.weight_decay)
                         and c.weight_decay >= 0, "a finite number >= 0"),
        "lr_schedule": (_one_of(c.lr_schedule, LR_SCHEDULES),
                        f"one of {', '.join(LR_SCHEDULES)}"),
        "seed": (_is_int(c.seed) and c.seed >= 0, "an integer >= 0"),
        "val_split": (_is_real(c.val_split) and 0 <= c.val_split < 1, "a fraction in [0, 1)"),
        "limit": (c.limit is None or (_is_int(c.limit) and c.limit >= 1), "an integer >= 1"),
        "augment": (_valid_augment(c.augment),
                    f"an integer shift in pixels from 0 to 8 or a spec like {AUGMENT_EXAMPLE}"),
        "checkpoint_every": (_is_int(c.checkpoint_every) and c.checkpoint_every >= 0,
                             "an integer >= 0"),
        "dropout": (dropout_ok and (c.dropout is None or c.model in MODELS_WITH_DROPOUT),
                    "None or a rate in [0, 1)" if not dropout_ok else
                    f"None for model {c.model!r} (it has no Dropout layers)"),
        "dtype": (_one_of(c.dtype, DTYPES), "float32 or float64"),
    }  # fmt: skip


def _one_of(value: Any, names: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value in names


def _is_int(v: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(v, Real) and not isinstance(v, bool)


def _valid_augment(v: Any) -> bool:
    from fastnet.data.augment import parse_augment  # NumPy: only when validating

    try:
        return not isinstance(v, bool) and parse_augment(v) is not None
    except ValueError:
        return False
