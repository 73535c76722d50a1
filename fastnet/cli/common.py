"""What the commands share: the usage error, threads, the compile notice, the device, and
the checks of the folders a command reads or writes (each a one-line error, exit code 2)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

COMPILE_NOTICE = "compiling kernels (first run only, up to a minute)..."


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def set_threads(threads: int | None) -> None:
    """Limit Numba's and BLAS's threads to ``threads`` (None: all cores, shared under MPI).

    Parameters
    ----------
    threads : int or None
        The value of ``--threads``.
    """
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


def compile_notice() -> contextlib.AbstractContextManager:
    """Print ``COMPILE_NOTICE`` on stdout when kernels are being compiled (a cold cache)."""
    from kernels._jit import compile_notice as notice

    return notice(lambda: print(COMPILE_NOTICE, flush=True))


def resolve_device(name: str) -> str:
    """``--device`` resolved once, first (DeviceError for cuda without a GPU: exit code 2).

    Parameters
    ----------
    name : str
        One of ``fastnet.config.DEVICES``.

    Returns
    -------
    str
        The device to compute on (``auto`` resolved).
    """
    from fastnet.backend import resolve_device as resolve

    return resolve(name)


def say_device(name: str, device: str) -> None:
    """Say in the training log (stdout) when ``auto`` fell back to the CPU; stderr is kept
    for errors, one line each."""
    if name == "auto" and device == "cpu":
        print("device: cpu (--device auto found no CUDA GPU)", flush=True)


def check_data_dir(data_dir: str | None) -> None:
    """Refuse a ``--data-dir`` that exists but is not a folder."""
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: {data_dir} is not a folder")


def check_writable(out: Path) -> None:
    """Refuse an ``--out`` folder whose nearest existing ancestor is not writable."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    check_writable_folder("--out", probe)


def check_writable_folder(flag: str, folder: Path) -> None:
    """Refuse ``folder`` (given by ``flag``) unless it is a writable folder."""
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"{flag}: {folder} is not a writable folder")
