"""The book's experiments, one command each: ``fastnet experiment NAME``.

Each writes PNG figure(s) and a JSON file of its numbers into an output folder, logs its
progress, and is bit-reproducible by its seed (same machine and thread count). The
defaults are the book's settings; :func:`run` takes the main ones as keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NAMES = ("gradcheck", "activations", "optimizers", "init", "batchnorm", "overfit", "hparams")
# The settings each experiment takes (None: the book's), by keyword of :func:`run`.
SETTINGS = {
    "gradcheck": (),
    "activations": (),
    "optimizers": ("iterations", "train_size"),
    "init": ("iterations", "train_size"),
    "batchnorm": ("epochs", "train_size"),
    "overfit": ("epochs", "train_size"),
    "hparams": ("epochs", "train_size", "trials"),
}


def run(
    name: str,
    out: str | Path,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
    **settings: int | None,
) -> dict:
    """Run experiment ``name`` (one of :data:`NAMES`) into folder ``out`` (created).

    Parameters
    ----------
    name : str
    out : path-like
    seed : int
    data_dir : str, optional
        MNIST root, as for ``fastnet train``; the experiments on MNIST load it.
    log : callable
        Receives one line per step.
    **settings : int or None
        ``iterations``, ``epochs``, ``trials``, ``train_size`` where :data:`SETTINGS`
        lists them for ``name``; None or absent: the book's value. Others are refused.

    Returns
    -------
    dict, the numbers also written to ``out/<name>.json``.
    """
    from fastnet.experiments import activations, curves, gradcheck, optimizers

    if name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(NAMES)}")
    given = {k: v for k, v in settings.items() if v is not None}
    extra = sorted(given.keys() - set(SETTINGS[name]))
    if extra:
        allowed = ", ".join(SETTINGS[name]) or "none"
        raise ValueError(
            f"experiment {name} does not take {', '.join(extra)} (it takes: {allowed})"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if name == "gradcheck":
        return gradcheck.run(out, seed=seed, log=log)
    if name == "activations":
        return activations.run(out, seed=seed, log=log)
    (x, t), (x_test, t_test) = _mnist(data_dir, given.pop("train_size", None))
    if name == "optimizers":
        return optimizers.run(out, (x, t), seed=seed, log=log, **given)
    runners: dict[str, Callable[..., dict]] = {
        "init": curves.run_init, "batchnorm": curves.run_batchnorm, "hparams": curves.run_hparams
    }  # fmt: skip
    runner = runners.get(name)
    if runner is not None:
        return runner(out, x, t, seed=seed, log=log, **given)
    return curves.run_overfit(out, x, t, x_test, t_test, seed=seed, log=log, **given)


def _mnist(data_dir: str | None, limit: int | None):
    """MNIST (uint8 images): the first ``limit`` training images, all test images."""
    from fastnet.data import load_dataset

    (x, t), test = load_dataset("mnist", data_dir)
    return (x[:limit], t[:limit]), test
