"""The ``fastnet`` argument parser: one-line errors, the help format, the argument types,
and the flags of each command as tables (in the PyTorch-examples spelling).

The training defaults and the names of the models, datasets, optimizers, schedules, dtypes
and devices are read from :mod:`fastnet.config`; the parser keeps no copy of them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from fastnet.config import (
    AUGMENT_EXAMPLE,
    DATASETS,
    DEVICES,
    DTYPES,
    LR_SCHEDULES,
    MODELS,
    OPTIMIZERS,
    default,
)
from fastnet.experiments import NAMES as EXPERIMENTS

Flag = tuple[str, dict[str, Any]]  # the arguments of one ``add_argument`` call


class _StoreGiven(argparse.Action):
    """argparse's ``store``, also noting the flag in ``args.given`` (checked by --resume)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*namespace.given, self.dest}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _number(check: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: a float for which ``check(value)`` holds."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _augment_spec(text: str) -> int | str:
    from fastnet.data.augment import canonical_augment

    try:
        return canonical_augment(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("augment: ")) from None


_positive = _number(lambda v: 0 < v < float("inf"), "a number > 0")
_non_negative = _number(lambda v: 0 <= v < float("inf"), "a number >= 0")
_fraction = _number(lambda v: 0 <= v < 1, "a number in [0, 1)")


# A negative number in any notation (argparse's own pattern misses "-1e-3" and "-inf",
# and would then report "expected one argument" instead of the flag's own check).
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump, exit code 2), negative numbers in any
    notation taken as values, and :class:`_HelpFormatter` for every subcommand."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default once: appended as ``(default: X)`` unless the help text
    already says it, and never for a default of None or False (the help text says what
    happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or "default" in text:
            return text
        if default is None or default is False or default is argparse.SUPPRESS:
            return text
        return text + " (default: %(default)s)"


DATA_DIR_HELP = (
    "folder with a DATASET/ subfolder of IDX files, searched first (default: "
    "$FASTNET_DATA_DIR; then ~/.cache/fastnet, then the MNIST copy bundled with fastnet "
    "or Debian's /usr/share/datasets/fashion-mnist)"
)
CHECKPOINT_HELP = "checkpoint.npz or best.npz of a run"

# The flags, in the order --help shows them. A flag that is a TrainConfig field takes its
# default from fastnet.config, but for --epochs: None there ("the saved number" with
# --resume), and TrainConfig's default is named in its help.
# fmt: off
_DEVICE: Flag = ("--device", dict(
    choices=DEVICES, default="auto",
    help="where to compute: cuda needs an NVIDIA GPU and fastnet[cuda]; auto uses the GPU "
    "when there is one; reference: the NumPy reference kernels, slow, for reading and "
    "debugging"))

TRAIN_FLAGS: dict[str, list[Flag]] = {
    "what to train": [
        ("--model", dict(choices=MODELS, default=default("model"),
                         help="network to train (`fastnet models` lists them)")),
        ("--dataset", dict(choices=DATASETS, default=default("dataset"),
                           help="dataset to train and test on")),
        ("--data-dir", dict(metavar="DIR", help=DATA_DIR_HELP)),
        ("--limit", dict(metavar="N", type=_positive_int, default=default("limit"),
                         help="use the first N training images (default: all)")),
        ("--val-split", dict(
            metavar="FRACTION", type=_fraction, default=default("val_split"),
            help="fraction of the training set held out for validation (0: report test "
            "accuracy)")),
        ("--augment", dict(
            metavar="SPEC", type=_augment_spec, default=default("augment"),
            help="random augmentation of training images: N (shifts of up to N pixels) or a "
            f"spec like {AUGMENT_EXAMPLE} (0: none)")),
        ("--dropout", dict(
            metavar="RATE", type=_fraction, default=default("dropout"),
            help="drop rate of the Dropout layers of vgg and vgg-bn (default: the book's 0.5)")),
    ],
    "how to train": [
        ("--epochs", dict(
            metavar="N", type=_positive_int, default=None,
            help=f"epochs to train (default: {default('epochs')}; with --resume: the saved "
            "number)")),
        ("--batch-size", dict(metavar="N", type=_positive_int, default=default("batch_size"),
                              help="images per training step")),
        ("--optimizer", dict(choices=OPTIMIZERS, default=default("optimizer"),
                             help="update rule (momentum and nesterov are SGD with momentum)")),
        ("--lr", dict(type=_positive, default=default("lr"),
                      help="learning rate (its peak, with --lr-schedule step or cosine)")),
        ("--momentum", dict(type=_fraction, default=default("momentum"),
                            help="momentum of --optimizer momentum/nesterov")),
        ("--weight-decay", dict(
            type=_non_negative, default=default("weight_decay"),
            help="L2 penalty on the parameters (decoupled from the gradient for adamw)")),
        ("--lr-schedule", dict(
            choices=LR_SCHEDULES, default=default("lr_schedule"),
            help="learning rate per epoch: constant, step (x0.1 at 50%% and 75%% of the "
            "epochs) or cosine (half a cosine wave towards 0)")),
        ("--seed", dict(metavar="N", type=_non_negative_int, default=default("seed"),
                        help="seed of the initial weights, shuffling, augmentation and dropout")),
        ("--dtype", dict(choices=DTYPES, default=default("dtype"),
                         help="dtype of the weights and the computation")),
    ],
    "run folder and resources": [
        ("--out", dict(metavar="DIR", help="run folder (default: runs/<model>-<dataset>-<time>)")),
        ("--resume", dict(
            metavar="CHECKPOINT",
            help="continue from checkpoint.npz or its run folder (other flags given must "
            "match it; default: start a new run)")),
        ("--checkpoint-every", dict(
            metavar="N", type=_non_negative_int, default=default("checkpoint_every"),
            help="also checkpoint every N steps (0: at the end of each epoch only)")),
        ("--threads", dict(
            metavar="N", type=_positive_int, default=None,
            help="threads for kernels and BLAS (default: all cores; under MPI, the cores of a "
            "machine shared among its processes)")),
        ("--dry-run", dict(action="store_true",
                           help="one training and one eval batch, write nothing")),
        _DEVICE,
    ],
}

# The other commands: their help line and flags.
COMMAND_FLAGS: dict[str, tuple[str, list[Flag]]] = {
    "evaluate": ("test accuracy, per class, and the confusion matrix", [
        ("checkpoint", dict(
            nargs="?",
            help=f"{CHECKPOINT_HELP}, or an .onnx model (none with --ensemble)")),
        ("--data-dir", dict(
            metavar="DIR",
            help="folder with a DATASET/ subfolder of IDX files, searched first (default: the "
            "run's --data-dir, if it had one; then as in `fastnet train --help`)")),
        ("--ensemble", dict(
            nargs="+", metavar="RUN_OR_CHECKPOINT",
            help="evaluate these models and the mean of their softmax outputs (a run folder "
            "means its checkpoint.npz, the final weights) instead of one CHECKPOINT")),
        _DEVICE,
        ("--misclassified", dict(metavar="FILE.png",
                                 help="save a grid of misclassified images")),
    ]),
    "predict": ("classify PNG/JPEG images", [
        ("checkpoint", dict(help=f"{CHECKPOINT_HELP}, or an .onnx model")),
        ("images", dict(nargs="+", metavar="IMAGE", help="image files, any size")),
        ("--top", dict(type=_positive_int, default=3, metavar="K",
                       help="classes to show per image")),
        _DEVICE,
    ]),
    "export": ("write a checkpoint's model as an ONNX file (needs [onnx])", [
        ("checkpoint", dict(help=CHECKPOINT_HELP)),
        ("output", dict(metavar="MODEL.onnx", help="the ONNX file to write")),
    ]),
    "plot": ("write curves.png and filters.png into a run folder", [
        ("run_dir", dict(help="the run folder (holds metrics.jsonl)")),
    ]),
    "models": ("list the models and their parameter counts", []),
    "download": ("fetch a dataset's official files (md5-verified)", [
        ("dataset", dict(choices=DATASETS, help="the dataset")),
        ("--data-dir", dict(
            metavar="DIR",
            help="root folder to download into, as DATASET/ (default: $FASTNET_DATA_DIR, else "
            "~/.cache/fastnet)")),
    ]),
    "experiment": ("run one of the book's experiments: figures (PNG) and numbers (JSON)", [
        ("name", dict(choices=EXPERIMENTS, help="the experiment")),
        ("--out", dict(metavar="DIR",
                       help="output folder (default: runs/experiment-<name>-<time>)")),
        ("--seed", dict(metavar="N", type=_non_negative_int, default=0,
                        help="seed of every draw")),
        ("--data-dir", dict(metavar="DIR", help=DATA_DIR_HELP)),
        ("--threads", dict(
            metavar="N", type=_positive_int, default=1,
            help="threads for kernels and BLAS (the MLPs are too small to gain from more: "
            "batchnorm took 5 s on 1 thread, 24 s on 2, on the shared 2-core VM)")),
        *[(flag, dict(metavar="N", type=_positive_int, default=None, help=what)) for flag, what in [
            ("--iterations", "training iterations (optimizers, init; the book: 2000)"),
            ("--epochs", "epochs (batchnorm 20, overfit 201, hparams 50 in the book)"),
            ("--trials", "random-search trials (hparams; the book: 100)"),
            ("--train-size", "training images used (the book: all; batchnorm 1000, overfit "
             "300, hparams 500)"),
        ]],
    ]),
}
# fmt: on


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fastnet`` and its commands.

    Returns
    -------
    argparse.ArgumentParser
        Its ``parse_args`` gives ``args.command`` and the flags of that command; for
        ``train`` also ``args.given``, the set of flags given (``--resume`` checks them).
    """
    parser = _Parser(
        prog="fastnet",
        description="Train and run the book's networks on MNIST with Numba kernels.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train = sub.add_parser("train", help="train a model")
    train.register("action", None, _StoreGiven)
    train.set_defaults(given=frozenset())
    for title, flags in TRAIN_FLAGS.items():
        _add_flags(train.add_argument_group(title), flags)
    for name, (help_text, flags) in COMMAND_FLAGS.items():
        _add_flags(sub.add_parser(name, help=help_text), flags)
    return parser


def _add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flags: list[Flag]
) -> None:
    for flag, keywords in flags:
        parser.add_argument(flag, **keywords)
