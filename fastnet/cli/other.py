"""The small commands: ``fastnet plot``, ``fastnet models``, ``fastnet download`` and
``fastnet experiment``."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from fastnet.cli.common import (
    UsageError,
    check_data_dir,
    check_writable,
    compile_notice,
    set_threads,
)


def cmd_plot(args: argparse.Namespace) -> int:
    """Write curves.png and filters.png into the run folder."""
    from fastnet import viz

    run = Path(args.run_dir)
    if not (run / "metrics.jsonl").is_file():
        raise UsageError(f"{run}: not a run folder (no metrics.jsonl)")
    written = viz.plot_run(run)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the models, their parameter counts and the first line of their docstring."""
    import numpy as np

    from fastnet import models

    for name, builder in models.MODELS.items():
        model = builder(np.random.default_rng(0))
        doc = (builder.__doc__ or "").strip().splitlines()[0]
        print(f"{name:<8} {models.count_parameters(model):>9,} parameters  {plain(doc)}")
    return 0


def plain(text: str) -> str:
    """``text`` without its reST markup: ``:role:`x``` and ````x```` read as ``x``."""
    return re.sub(r"(?::\w+:)?`+([^`]*)`+", r"\1", text)


def cmd_download(args: argparse.Namespace) -> int:
    """Download a dataset's four official files (md5-verified)."""
    from fastnet.data import download_dataset

    check_data_dir(args.data_dir)
    folder = download_dataset(args.dataset, args.data_dir, log=print)
    print(f"{args.dataset}: the four official files are in {folder}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run one of the book's experiments into an output folder."""
    from fastnet import experiments

    check_data_dir(args.data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"experiment-{args.name}-{stamp}"
    check_writable(out)
    set_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("iterations", "epochs", "trials", "train_size")}
    try:
        with compile_notice():
            experiments.run(args.name, out, seed=args.seed, data_dir=args.data_dir, **settings)
    except ValueError as e:
        if type(e) is not ValueError:  # DataError and the like: their own exit codes
            raise
        raise UsageError(str(e)) from None
    print(f"output folder: {out}")
    return 0
