"""``fastnet train``: a new run, or ``--resume`` of a saved one (whose flags must match)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from fastnet.cli.common import (
    UsageError,
    check_data_dir,
    check_writable,
    compile_notice,
    resolve_device,
    say_device,
    set_threads,
)
from fastnet.config import TrainConfig, default


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model into a run folder."""
    from fastnet import distributed, run

    distributed.quiet_other_ranks()  # under MPI, rank 0 alone prints progress
    device = resolve_device(args.device)
    check_data_dir(args.data_dir)
    if args.resume is not None:
        config, out = TrainConfig(), _resumed_run_folder(args)
    else:
        config, out = _new_config(args), _new_run_folder(args)
    check_writable(out)
    set_threads(args.threads)
    say_device(args.device, device)
    with compile_notice():
        history = run.fit(
            config, out, resume=args.resume, epochs=args.epochs, dry_run=args.dry_run, device=device
        )
    if history and not args.dry_run:
        print(f"run folder: {out}")
    return 0


def _new_config(args: argparse.Namespace) -> TrainConfig:
    """The configuration the flags give (``--epochs`` unset: the default), validated."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    values["epochs"] = args.epochs or default("epochs")
    config = TrainConfig(**values)
    try:
        config.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    return config


def _new_run_folder(args: argparse.Namespace) -> Path:
    """``--out``, or a new folder under runs/; never one that holds a checkpoint."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"{args.model}-{args.dataset}-{stamp}"
    if (out / "checkpoint.npz").exists() and not args.dry_run:
        raise UsageError(
            f"--out: {out} already holds a checkpoint; use --resume {out} or another --out"
        )
    return out


def _resumed_run_folder(args: argparse.Namespace) -> Path:
    """The run folder of ``--resume`` (or ``--out``), once the flags given match its
    checkpoint."""
    resume = Path(args.resume)
    if not resume.exists():
        raise UsageError(f"--resume: {resume} does not exist")
    _check_resume_flags(args, resume / "checkpoint.npz" if resume.is_dir() else resume)
    return Path(args.out) if args.out else (resume if resume.is_dir() else resume.parent)


def _check_resume_flags(args: argparse.Namespace, path: Path) -> None:
    """Refuse flags given with --resume that differ from the checkpoint's configuration."""
    from fastnet import checkpoint, run

    saved = vars(run.config_from_checkpoint(path, checkpoint.load(path)[2]))
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
