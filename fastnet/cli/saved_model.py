"""The commands on a saved model: ``fastnet evaluate`` (one model or an ensemble),
``fastnet predict`` and ``fastnet export``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fastnet.cli.common import (
    UsageError,
    check_data_dir,
    check_writable_folder,
    compile_notice,
    resolve_device,
)
from fastnet.config import TrainConfig

if TYPE_CHECKING:
    from fastnet.module import Module


def load_model(path: str) -> tuple[Module, TrainConfig]:
    """Build the model saved in checkpoint ``path`` and load its weights (eval mode).

    Parameters
    ----------
    path : str
        A checkpoint (``.npz``) of a run, or an ``.onnx`` file: read by ``fastnet.onnx.load``,
        in float32 (the images' dtype), with the default configuration (MNIST).

    Returns
    -------
    model : Module
        The model, in eval mode, on the host.
    config : TrainConfig
        The configuration of the run that saved it.
    """
    import numpy as np

    from fastnet import checkpoint, models
    from fastnet.errors import CheckpointError
    from fastnet.run import config_from_checkpoint

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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the test accuracy, per class, and the confusion matrix of one model, or the
    accuracies of an ``--ensemble`` and of their mean."""
    import numpy as np

    from fastnet.data import load_dataset
    from fastnet.loop import evaluate
    from fastnet.metrics import confusion_matrix

    device = resolve_device(args.device)
    check_data_dir(args.data_dir)
    if (args.checkpoint is None) == (args.ensemble is None):
        raise UsageError("give either one CHECKPOINT or --ensemble RUN_OR_CHECKPOINT...")
    if args.ensemble:
        if args.misclassified:
            raise UsageError("--misclassified works with one CHECKPOINT, not --ensemble")
        return _evaluate_ensemble(args, device)
    if args.misclassified:
        check_writable_folder("--misclassified", Path(args.misclassified).parent)
    model, config = load_model(args.checkpoint)
    model.to(device)
    dataset = config.dataset
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir or config.data_dir, log=print)
    with compile_notice():
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


def _evaluate_ensemble(args: argparse.Namespace, device: str) -> int:
    from fastnet.data import load_dataset
    from fastnet.ensemble import check_members, ensemble_evaluate, resolve_checkpoint

    paths = [str(resolve_checkpoint(p)) for p in args.ensemble]
    members = [load_model(p) for p in paths]
    dataset = check_members(paths, [config.dataset for _, config in members])
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir or members[0][1].data_dir)
    with compile_notice():
        models = [model.to(device) for model, _ in members]
        accuracies, acc, pred = ensemble_evaluate(models, paths, x_test, t_test)
    for i, (path, (_, config), a) in enumerate(zip(paths, members, accuracies, strict=True)):
        print(f"model {i + 1}: {path} ({config.model}): test accuracy {a:.4f}")
    correct = int((pred == t_test).sum())
    print(f"ensemble of {len(paths)} (mean of softmax outputs): test accuracy {acc:.4f} "
          f"({correct}/{len(t_test)}) on {dataset}")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Print the top ``--top`` classes of each image."""
    import numpy as np

    from fastnet import inference, viz
    from fastnet.backend import to, to_host
    from kernels.softmax_ce import softmax_forward

    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint)
    model.to(device)
    batch = to(np.stack([viz.load_digit(path) for path in args.images]), device)
    with compile_notice():
        forward = inference.compile(model) if device == "cpu" else model
        probs = to_host(softmax_forward(forward(batch)))
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(-p)[: args.top]
        print(f"{path}: " + "  ".join(f"{c} ({p[c]:.3f})" for c in top))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the checkpoint's model as an ONNX file."""
    from fastnet import onnx

    out = Path(args.output)
    check_writable_folder("MODEL.onnx", out.parent)
    model, _ = load_model(args.checkpoint)
    with compile_notice():
        onnx.export(model, out)
    print(f"wrote {out}")
    return 0
