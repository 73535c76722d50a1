"""The ``fastnet`` command: train, evaluate, predict, export, plot, models, download.

``main(argv=None) -> int``. Bad input exits 2 with one line on stderr; an unexpected
internal error exits 1 with a short message (the traceback with ``--debug``).
Heavy modules are imported inside the commands so that ``fastnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags in the PyTorch-examples spelling)."""
    parser = _Parser(
        prog="fastnet",
        description="Train and run the book's networks on MNIST with Numba kernels.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (
        _add_train,
        _add_evaluate,
        _add_predict,
        _add_export,
        _add_plot,
        _add_models,
        _add_download,
        _add_experiment,
    ):
        add(sub)
    return parser


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model")
    t.register("action", None, _StoreGiven)
    t.set_defaults(given=frozenset())
    _train_what_flags(t.add_argument_group("what to train"))
    _train_how_flags(t.add_argument_group("how to train"))
    _train_run_flags(t.add_argument_group("run folder and resources"))


def _train_what_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default=DEFAULTS["model"],
        help="network to train (`fastnet models` lists them)",
    )
    g.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=DEFAULTS["dataset"],
        help="dataset to train and test on",
    )
    g.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    g.add_argument(
        "--limit",
        metavar="N",
        type=_positive_int,
        default=None,
        help="use the first N training images (default: all)",
    )
    g.add_argument(
        "--val-split",
        metavar="FRACTION",
        type=_fraction,
        default=DEFAULTS["val_split"],
        help="fraction of the training set held out for validation (0: report test accuracy)",
    )
    g.add_argument(
        "--augment",
        metavar="SPEC",
        type=_augment_spec,
        default=DEFAULTS["augment"],
        help="random augmentation of training images: N (shifts of up to N pixels) or a spec "
        "like shift=2,rotate=10,scale=0.1,elastic=34:4 (0: none)",
    )
    g.add_argument(
        "--dropout",
        metavar="RATE",
        type=_fraction,
        default=DEFAULTS["dropout"],
        help="drop rate of the Dropout layers of vgg and vgg-bn (default: the book's 0.5)",
    )


def _train_how_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--epochs",
        metavar="N",
        type=_positive_int,
        default=None,
        help=f"epochs to train (default: {DEFAULTS['epochs']}; with --resume: the saved number)",
    )
    g.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=DEFAULTS["batch_size"],
        help="images per training step",
    )
    g.add_argument(
        "--optimizer",
        choices=OPTIMIZER_NAMES,
        default=DEFAULTS["optimizer"],
        help="update rule (momentum and nesterov are SGD with momentum)",
    )
    g.add_argument(
        "--lr",
        type=_positive,
        default=DEFAULTS["lr"],
        help="learning rate (its peak, with --lr-schedule step or cosine)",
    )
    g.add_argument(
        "--momentum",
        type=_fraction,
        default=DEFAULTS["momentum"],
        help="momentum of --optimizer momentum/nesterov",
    )
    g.add_argument(
        "--weight-decay",
        type=_non_negative,
        default=DEFAULTS["weight_decay"],
        help="L2 penalty on the parameters (decoupled from the gradient for adamw)",
    )
    g.add_argument(
        "--lr-schedule",
        choices=("constant", "step", "cosine"),
        default=DEFAULTS["lr_schedule"],
        help="learning rate per epoch: constant, step (x0.1 at 50%% and 75%% of "
        "the epochs) or cosine (half a cosine wave towards 0)",
    )
    g.add_argument(
        "--seed",
        metavar="N",
        type=_non_negative_int,
        default=DEFAULTS["seed"],
        help="seed of the initial weights, shuffling, augmentation and dropout",
    )
    g.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default=DEFAULTS["dtype"],
        help="dtype of the weights and the computation",
    )


def _train_run_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/<model>-<dataset>-<time>)"
    )
    g.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue from checkpoint.npz or its run folder (other flags given "
        "must match it; default: start a new run)",
    )
    g.add_argument(
        "--checkpoint-every",
        metavar="N",
        type=_non_negative_int,
        default=0,
        help="also checkpoint every N steps (0: at the end of each epoch only)",
    )
    g.add_argument(
        "--threads",
        metavar="N",
        type=_positive_int,
        default=None,
        help="threads for kernels and BLAS (default: all cores; under MPI, the cores of a "
        "machine shared among its processes)",
    )
    g.add_argument(
        "--dry-run", action="store_true", help="one training and one eval batch, write nothing"
    )
    _device_flag(g)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("evaluate", help="test accuracy, per class, and the confusion matrix")
    e.add_argument(
        "checkpoint",
        nargs="?",
        help="checkpoint.npz or best.npz of a run, or an .onnx model (none with --ensemble)",
    )
    e.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with a DATASET/ subfolder of IDX files, searched first (default: the "
        "run's --data-dir, if it had one; then as in `fastnet train --help`)",
    )
    _ensemble_flag(e)
    _device_flag(e)
    e.add_argument(
        "--misclassified", metavar="FILE.png", help="save a grid of misclassified images"
    )


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images")
    p.add_argument("checkpoint", help="checkpoint.npz or best.npz of a run, or an .onnx model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, any size")
    p.add_argument(
        "--top", type=_positive_int, default=3, metavar="K", help="classes to show per image"
    )
    _device_flag(p)


def _add_export(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="write a checkpoint's model as an ONNX file (needs [onnx])")
    x.add_argument("checkpoint", help="checkpoint.npz or best.npz of a run")
    x.add_argument("output", metavar="MODEL.onnx", help="the ONNX file to write")


def _add_plot(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser("plot", help="write curves.png and filters.png into a run folder")
    pl.add_argument("run_dir", help="the run folder (holds metrics.jsonl)")


def _add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list the models and their parameter counts")


def _add_download(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("download", help="fetch a dataset's official files (md5-verified)")
    d.add_argument("dataset", choices=DATASET_NAMES, help="the dataset")
    d.add_argument(
        "--data-dir",
        metavar="DIR",
        help="root folder to download into, as DATASET/ (default: $FASTNET_DATA_DIR, else "
        "~/.cache/fastnet)",
    )


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    from fastnet.experiments import NAMES

    x = sub.add_parser(
        "experiment", help="run one of the book's experiments: figures (PNG) and numbers (JSON)"
    )
    x.add_argument("name", choices=NAMES, help="the experiment")
    x.add_argument(
        "--out", metavar="DIR", help="output folder (default: runs/experiment-<name>-<time>)"
    )
    x.add_argument(
        "--seed", metavar="N", type=_non_negative_int, default=0, help="seed of every draw"
    )
    x.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    x.add_argument(
        "--threads",
        metavar="N",
        type=_positive_int,
        default=1,
        help="threads for kernels and BLAS (the MLPs are too small to gain from more: "
        "batchnorm took 5 s on 1 thread, 24 s on 2, on the shared 2-core VM)",
    )
    for flag, what in [
        ("--iterations", "training iterations (optimizers, init; the book: 2000)"),
        ("--epochs", "epochs (batchnorm 20, overfit 201, hparams 50 in the book)"),
        ("--trials", "random-search trials (hparams; the book: 100)"),
        ("--train-size", "training images used (the book: all; batchnorm 1000, overfit 300, "
         "hparams 500)"),
    ]:  # fmt: skip
        x.add_argument(flag, metavar="N", type=_positive_int, default=None, help=what)


def cmd_experiment(args: argparse.Namespace) -> int:
    from fastnet import experiments

    _check_data_dir(args.data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"experiment-{args.name}-{stamp}"
    _check_writable(out)
    _set_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("iterations", "epochs", "trials", "train_size")}
    try:
        with _compile_notice():
            experiments.run(args.name, out, seed=args.seed, data_dir=args.data_dir, **settings)
    except ValueError as e:
        if type(e) is not ValueError:  # DataError and the like: their own exit codes
            raise
        raise UsageError(str(e)) from None
    print(f"output folder: {out}")
    return 0


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
    """Build the model saved in checkpoint ``path`` and load its weights (eval mode); an
    ``.onnx`` file is read by ``fastnet.onnx.load``, in float32 (the images' dtype), with
    the default configuration (MNIST)."""
    import numpy as np

    from fastnet import checkpoint, models
    from fastnet.errors import CheckpointError
    from fastnet.train import TrainConfig, config_from_checkpoint

    if path.endswith(".onnx"):
        from fastnet import onnx

        return onnx.load(path).to(np.float32), TrainConfig()

    model_state, _, meta = checkpoint.load(path)
    config = config_from_checkpoint(path, meta)
    model = models.build(config.model, np.random.default_rng(0), np.dtype(config.dtype).type)
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: weights do not fit model {config.model!r}: {e}") from None
    return model.eval(), config


def _ensemble_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ensemble",
        nargs="+",
        metavar="RUN_OR_CHECKPOINT",
        help="evaluate these models and the mean of their softmax outputs (a run folder "
        "means its checkpoint.npz, the final weights) instead of one CHECKPOINT",
    )


def _evaluate_ensemble(args: argparse.Namespace, device: str) -> int:
    from fastnet.data import load_dataset
    from fastnet.ensemble import check_members, ensemble_evaluate, resolve_checkpoint

    paths = [str(resolve_checkpoint(p)) for p in args.ensemble]
    members = [_load_model(p) for p in paths]
    dataset = check_members(paths, [config.dataset for _, config in members])
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir or members[0][1].data_dir)
    with _compile_notice():
        models = [model.to(device) for model, _ in members]
        accuracies, acc, pred = ensemble_evaluate(models, paths, x_test, t_test)
    for i, (path, (_, config), a) in enumerate(zip(paths, members, accuracies, strict=True)):
        print(f"model {i + 1}: {path} ({config.model}): test accuracy {a:.4f}")
    correct = int((pred == t_test).sum())
    print(f"ensemble of {len(paths)} (mean of softmax outputs): test accuracy {acc:.4f} "
          f"({correct}/{len(t_test)}) on {dataset}")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from fastnet.data import load_dataset
    from fastnet.train import confusion_matrix, evaluate

    device = _resolve_device(args.device)
    _check_data_dir(args.data_dir)
    if (args.checkpoint is None) == (args.ensemble is None):
        raise UsageError("give either one CHECKPOINT or --ensemble RUN_OR_CHECKPOINT...")
    if args.ensemble:
        if args.misclassified:
            raise UsageError("--misclassified works with one CHECKPOINT, not --ensemble")
        return _evaluate_ensemble(args, device)
    if args.misclassified:
        _check_writable_folder("--misclassified", Path(args.misclassified).parent)
    model, config = _load_model(args.checkpoint)
    model.to(device)
    dataset = config.dataset
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir or config.data_dir, log=print)
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

    from fastnet import inference, viz
    from fastnet.backend import to, to_host
    from kernels.softmax_ce import softmax_forward

    device = _resolve_device(args.device)
    model, _ = _load_model(args.checkpoint)
    model.to(device)
    batch = to(np.stack([viz.load_digit(path) for path in args.images]), device)
    with _compile_notice():
        forward = inference.compile(model) if device == "cpu" else model
        probs = to_host(softmax_forward(forward(batch)))
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(-p)[: args.top]
        print(f"{path}: " + "  ".join(f"{c} ({p[c]:.3f})" for c in top))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fastnet import onnx

    out = Path(args.output)
    _check_writable_folder("MODEL.onnx", out.parent)
    model, _ = _load_model(args.checkpoint)
    with _compile_notice():
        onnx.export(model, out)
    print(f"wrote {out}")
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


def cmd_download(args: argparse.Namespace) -> int:
    from fastnet.data import download_dataset

    _check_data_dir(args.data_dir)
    folder = download_dataset(args.dataset, args.data_dir, log=print)
    print(f"{args.dataset}: the four official files are in {folder}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "plot": cmd_plot,
    "models": cmd_models,
    "download": cmd_download,
    "experiment": cmd_experiment,
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
