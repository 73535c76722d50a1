"""The ``fastnet`` command: train, evaluate, predict, plot, models.

``main(argv=None) -> int``. Bad input exits 2 with one line on stderr; an unexpected
internal error exits 1 with a short message (the traceback with ``--debug``).
Heavy modules are imported inside the commands so that ``fastnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from pathlib import Path

DEFAULTS = {
    "model": "vgg",
    "dataset": "mnist",
    "epochs": 20,
    "batch_size": 100,
    "optimizer": "adam",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "lr_schedule": "cosine",
    "seed": 0,
    "val_split": 0.0,
    "augment": 0,
    "dropout": None,
    "dtype": "float32",
}
MODEL_NAMES = ("vgg", "vgg-bn", "simple", "mlp")
DATASET_NAMES = ("mnist", "fashion-mnist")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


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


def _number(check, expected: str):
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


_positive = _number(lambda v: 0 < v < float("inf"), "a number > 0")
_non_negative = _number(lambda v: 0 <= v < float("inf"), "a number >= 0")
_fraction = _number(lambda v: 0 <= v < 1, "a number in [0, 1)")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump): exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags in the PyTorch-examples spelling)."""
    parser = _Parser(
        prog="fastnet",
        description="Train and run the book's networks on MNIST with Numba kernels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    fmt = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", help="train a model", formatter_class=fmt)
    t.register("action", None, _StoreGiven)
    t.set_defaults(given=frozenset())
    t.add_argument("--model", choices=MODEL_NAMES, default=DEFAULTS["model"])
    t.add_argument("--dataset", choices=DATASET_NAMES, default=DEFAULTS["dataset"])
    t.add_argument(
        "--data-dir", help="dataset root (default: $FASTNET_DATA_DIR or ~/.cache/fastnet)"
    )
    t.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"epochs to train (default {DEFAULTS['epochs']}; with --resume: the saved number)",
    )
    t.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"])
    t.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default=DEFAULTS["optimizer"])
    t.add_argument("--lr", type=_positive, default=DEFAULTS["lr"], help="learning rate")
    t.add_argument(
        "--momentum",
        type=_fraction,
        default=DEFAULTS["momentum"],
        help="momentum of --optimizer momentum/nesterov",
    )
    t.add_argument("--weight-decay", type=_non_negative, default=DEFAULTS["weight_decay"])
    t.add_argument(
        "--lr-schedule", choices=("constant", "step", "cosine"), default=DEFAULTS["lr_schedule"]
    )
    t.add_argument("--seed", type=_non_negative_int, default=DEFAULTS["seed"])
    t.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="threads for kernels and BLAS (default: all cores; under MPI, the cores of a "
        "machine shared among its processes)",
    )
    t.add_argument(
        "--val-split",
        type=_fraction,
        default=DEFAULTS["val_split"],
        help="fraction of the training set held out for validation (0: report test accuracy)",
    )
    t.add_argument(
        "--augment",
        type=_non_negative_int,
        default=DEFAULTS["augment"],
        help="shift training images by up to N pixels at random (0: no augmentation)",
    )
    t.add_argument(
        "--dropout",
        type=_fraction,
        default=DEFAULTS["dropout"],
        help="drop rate of the Dropout layers of vgg and vgg-bn (default: the book's 0.5)",
    )
    t.add_argument(
        "--limit", type=_positive_int, default=None, help="use the first N training images"
    )
    t.add_argument(
        "--dtype", choices=("float32", "float64"), default=DEFAULTS["dtype"],
        help="dtype of the weights and the computation",
    )  # fmt: skip
    t.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=0,
        help="also checkpoint every N steps (0: at the end of each epoch only)",
    )
    t.add_argument("--out", help="run folder (default: runs/<model>-<dataset>-<time>)")
    t.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue from checkpoint.npz or its run folder (other flags given must match it)",
    )
    t.add_argument(
        "--dry-run", action="store_true", help="one training and one eval batch, write nothing"
    )
    _device_flag(t)

    e = sub.add_parser(
        "evaluate", help="test accuracy, per class, and the confusion matrix", formatter_class=fmt
    )
    e.add_argument("checkpoint")
    e.add_argument("--data-dir")
    _device_flag(e)
    e.add_argument(
        "--misclassified", metavar="FILE.png", help="save a grid of misclassified images"
    )

    p = sub.add_parser("predict", help="classify PNG/JPEG images", formatter_class=fmt)
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=_positive_int, default=3, help="classes to show per image")
    _device_flag(p)

    pl = sub.add_parser(
        "plot", help="write curves.png and filters.png into a run folder", formatter_class=fmt
    )
    pl.add_argument("run_dir")

    sub.add_parser("models", help="list the models and their parameter counts")
    return parser  # fmt: skip


def _set_threads(threads: int | None) -> None:
    import numba
    import scipy.linalg.cython_blas  # noqa: F401 - loads the BLAS of Numba's np.dot, to limit it
    from threadpoolctl import threadpool_limits

    from fastnet.distributed import default_threads

    n = threads or default_threads()
    if n > numba.config.NUMBA_NUM_THREADS:
        raise UsageError(
            f"--threads must be at most {numba.config.NUMBA_NUM_THREADS} on this machine, got {n}"
        )
    numba.set_num_threads(n)
    threadpool_limits(n)


COMPILE_NOTICE = "compiling kernels (first run only, up to a minute)..."


def _compile_notice() -> contextlib.AbstractContextManager:
    """Print ``COMPILE_NOTICE`` on stdout when kernels are being compiled (a cold cache)."""
    from kernels._jit import compile_notice

    return compile_notice(lambda: print(COMPILE_NOTICE, flush=True))


def _device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to compute: cuda needs an NVIDIA GPU and fastnet[cuda]; auto uses the GPU "
        "when there is one",
    )


def _resolve_device(name: str) -> str:
    """``--device`` resolved once, first (DeviceError for cuda without a GPU: exit code 2)."""
    from fastnet.backend import resolve_device

    return resolve_device(name)


def _say_device(name: str, device: str) -> None:
    """Say in the training log (stdout) when ``auto`` fell back to the CPU; stderr is kept
    for errors, one line each."""
    if name == "auto" and device == "cpu":
        print("device: cpu (--device auto found no CUDA GPU)", flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from fastnet import distributed, train

    distributed.quiet_other_ranks()  # under MPI, rank 0 alone prints progress
    device = _resolve_device(args.device)
    _check_data_dir(args.data_dir)
    if args.resume is not None:
        resume = Path(args.resume)
        if not resume.exists():
            raise UsageError(f"--resume: {resume} does not exist")
        _check_resume_flags(args, resume / "checkpoint.npz" if resume.is_dir() else resume)
        out = Path(args.out) if args.out else (resume if resume.is_dir() else resume.parent)
        config = train.TrainConfig()
    else:
        values = {k: getattr(args, k) for k in DEFAULTS}
        values["epochs"] = args.epochs or DEFAULTS["epochs"]
        config = train.TrainConfig(
            **values, data_dir=args.data_dir, limit=args.limit,
            checkpoint_every=args.checkpoint_every,
        )  # fmt: skip
        try:
            config.validate()
        except ValueError as e:
            raise UsageError(str(e)) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out) if args.out else Path("runs") / f"{args.model}-{args.dataset}-{stamp}"
        if (out / "checkpoint.npz").exists() and not args.dry_run:
            raise UsageError(
                f"--out: {out} already holds a checkpoint; use --resume {out} or another --out"
            )
    _check_writable(out)
    _set_threads(args.threads)
    _say_device(args.device, device)
    with _compile_notice():
        history = train.fit(
            config, out, resume=args.resume, epochs=args.epochs, dry_run=args.dry_run, device=device
        )
    if history and not args.dry_run:
        print(f"run folder: {out}")
    return 0


def _check_resume_flags(args: argparse.Namespace, path: Path) -> None:
    """Refuse flags given with --resume that differ from the checkpoint's configuration."""
    from fastnet import checkpoint, train

    saved = vars(train.config_from_checkpoint(path, checkpoint.load(path)[2]))
    differ = [
        f"--{k.replace('_', '-')} {getattr(args, k)} (the checkpoint has {saved[k]})"
        for k in sorted(args.given & saved.keys() - {"epochs"})
        if getattr(args, k) != saved[k]
    ]
    if differ:
        raise UsageError(
            f"--resume continues the run saved in {path}, but these flags differ from it: "
            f"{', '.join(differ)}; drop them, or start a new run with another --out"
        )


def _check_data_dir(data_dir: str | None) -> None:
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: {data_dir} is not a folder")


def _check_writable(out: Path) -> None:
    probe = out
    while not probe.exists():
        probe = probe.parent
    _check_writable_folder("--out", probe)


def _check_writable_folder(flag: str, folder: Path) -> None:
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"{flag}: {folder} is not a writable folder")


def _load_model(path: str):
    """Build the model saved in checkpoint ``path`` and load its weights (eval mode)."""
    import numpy as np

    from fastnet import checkpoint, models
    from fastnet.errors import CheckpointError
    from fastnet.train import config_from_checkpoint

    model_state, _, meta = checkpoint.load(path)
    config = config_from_checkpoint(path, meta)
    model = models.build(config.model, np.random.default_rng(0), np.dtype(config.dtype).type)
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: weights do not fit model {config.model!r}: {e}") from None
    return model.eval(), config


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from fastnet.data import load_dataset
    from fastnet.train import confusion_matrix, evaluate

    device = _resolve_device(args.device)
    _check_data_dir(args.data_dir)
    if args.misclassified:
        _check_writable_folder("--misclassified", Path(args.misclassified).parent)
    model, config = _load_model(args.checkpoint)
    model.to(device)
    dataset = config.dataset
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir or config.data_dir)
    with _compile_notice():
        acc, pred = evaluate(model, x_test, t_test)
    m = confusion_matrix(t_test, pred)
    print(f"test accuracy: {acc:.4f} ({int(np.trace(m))}/{len(t_test)}) on {dataset}")
    print("per-class accuracy: " + "  ".join(
        f"{c}: {m[c, c] / max(1, m[c].sum()):.4f}" for c in range(10)))  # fmt: skip
    print("confusion matrix (rows: label, columns: prediction):")
    print("     " + "".join(f"{c:>6}" for c in range(10)))
    for c in range(10):
        print(f"{c:>5}" + "".join(f"{v:>6}" for v in m[c]))
    if args.misclassified:
        from fastnet import viz

        wrong = np.flatnonzero(pred != t_test)
        viz.save_misclassified(args.misclassified, x_test[wrong], t_test[wrong], pred[wrong])
        print(f"wrote {args.misclassified} ({min(len(wrong), viz.MAX_GRID)} images)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from fastnet import viz
    from fastnet.backend import to, to_host
    from kernels.softmax_ce import softmax_forward

    device = _resolve_device(args.device)
    model, _ = _load_model(args.checkpoint)
    model.to(device)
    batch = to(np.stack([viz.load_digit(path) for path in args.images]), device)
    with _compile_notice():
        probs = to_host(softmax_forward(model(batch)))
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(-p)[: args.top]
        print(f"{path}: " + "  ".join(f"{c} ({p[c]:.3f})" for c in top))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from fastnet import viz

    run = Path(args.run_dir)
    if not (run / "metrics.jsonl").is_file():
        raise UsageError(f"{run}: not a run folder (no metrics.jsonl)")
    written = viz.plot_run(run)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import numpy as np

    from fastnet import models

    for name, builder in models.MODELS.items():
        model = builder(np.random.default_rng(0))
        doc = (builder.__doc__ or "").strip().splitlines()[0]
        print(f"{name:<8} {models.count_parameters(model):>9,} parameters  {doc}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "plot": cmd_plot,
    "models": cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastnet`` command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        from fastnet.distributed import report  # once per job under MPI
        from fastnet.errors import FastnetError, TrainingDiverged, TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            report(e, str(e), sys.stdout)
            return 130
        if isinstance(e, TrainingDiverged) or (isinstance(e, OSError) and not args.debug):
            report(e, f"fastnet {args.command}: error: {e}", sys.stderr)
            return 1
        if isinstance(e, (UsageError, FastnetError)):
            report(e, f"fastnet {args.command}: error: {e}", sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        else:
            report(e, f"fastnet {args.command}: internal error: {type(e).__name__}: {e} "
                   "(run with --debug for the traceback)", sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
