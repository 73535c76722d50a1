"""Where arrays live and which kernels compute: ``"cpu"``, ``"cuda"`` or ``"reference"``.

``resolve_device`` turns the user's ``--device`` choice into one of these once, at
start-up; there is no global switch. The kernel wrappers dispatch on where their
arguments are, so a model runs on the GPU simply by holding device arrays
(``Module.to("cuda")``). ``"reference"`` keeps the arrays on the host and makes every
layer compute with the NumPy references of its kernels (``Module.to("reference")``); the
choice lives on the modules (:func:`module_device` reads it back). ``numba.cuda`` is
imported only when a device is asked for: numba-cuda is an optional dependency
(``fastnet[cuda]``).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnet.config import DEVICES
from fastnet.errors import FastnetError
from kernels._checks import is_device

if TYPE_CHECKING:
    from fastnet.module import Module

# The kernel set each device computes with (``Module.to`` sets it on every module): the
# fast wrappers of ``kernels.<family>`` dispatch on where the arrays live (host or GPU);
# the references (``kernels/<family>/reference.py``) are NumPy, on the host.
KERNEL_SETS = {"cpu": "fast", "cuda": "fast", "reference": "reference"}


class DeviceError(FastnetError, RuntimeError):
    """The requested device cannot be used (e.g. ``--device cuda`` without a GPU)."""


def cuda_available() -> tuple[str, str]:
    """Which CUDA numba-cuda can run kernels on here, and why none.

    Returns
    -------
    (kind, why)
        ``kind`` is ``"gpu"``, ``"simulator"`` (``NUMBA_ENABLE_CUDASIM=1``) or ``""``
        (none; ``why`` says why).
    """
    from numba import config

    if importlib.util.find_spec("numba.cuda") is None:
        return "", "numba-cuda is not installed"
    if config.ENABLE_CUDASIM:
        importlib.import_module("numba.cuda")
        return "simulator", ""
    # Importing numba.cuda takes about 0.5 s: not worth it without a driver to talk to.
    if not _cuda_driver_found():
        return "", "no CUDA driver library was found"
    if importlib.import_module("numba.cuda").is_available():
        return "gpu", ""
    return "", "numba.cuda.is_available() is False"


def _cuda_driver_found() -> bool:
    """Whether the CUDA driver library loads: ``$NUMBA_CUDA_DRIVER`` if set (as Numba),
    else libcuda on Linux or nvcuda.dll on Windows."""
    names = {"linux": ["libcuda.so.1", "libcuda.so"], "win32": ["nvcuda.dll"]}.get(sys.platform, [])
    if "NUMBA_CUDA_DRIVER" in os.environ:
        names = [os.environ["NUMBA_CUDA_DRIVER"]]
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def resolve_device(name: str) -> str:
    """Resolve a ``--device`` choice to ``"cpu"``, ``"cuda"`` or ``"reference"``.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda", "reference"}
        ``"auto"`` is ``"cuda"`` with a real GPU, else ``"cpu"`` (the caller tells the
        user); ``"cuda"`` also accepts Numba's CUDA simulator (for tests);
        ``"reference"`` (the NumPy references, on the host) is always available.

    Raises
    ------
    DeviceError
        ``"cuda"`` without a usable CUDA GPU, or an unknown name.
    """
    if name not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name in ("cpu", "reference"):
        return name
    kind, why = cuda_available()
    if kind == "gpu" or (kind and name == "cuda"):
        return "cuda"
    if name == "auto":
        return "cpu"
    raise DeviceError(
        f"--device cuda: no CUDA GPU found ({why}); install fastnet[cuda] on a machine "
        "with an NVIDIA GPU or use --device cpu"
    )


def _cuda() -> Any:
    return importlib.import_module("kernels._cuda")


def to_device(a: np.ndarray) -> Any:
    """Copy a host array to the GPU (a device array is returned as is)."""
    return a if is_device(a) else _cuda().to_device(a)


def to_host(a: Any) -> np.ndarray:
    """A host copy of a device array; a host array is returned as is."""
    return a.copy_to_host() if is_device(a) else a


def to(a: Any, device: str) -> Any:
    """``a`` on ``device``, copied only if it is elsewhere: the GPU for ``"cuda"``, the host
    (a NumPy array) for ``"cpu"`` and ``"reference"``."""
    return to_device(a) if device == "cuda" else to_host(a)


def device_of(a: Any) -> str:
    """``"cuda"`` for a device array, else ``"cpu"``."""
    return "cuda" if is_device(a) else "cpu"


def module_device(model: Module) -> str:
    """Where ``model`` computes: ``"reference"`` if any of its modules uses the NumPy
    references (``Module.to("reference")``), else ``"cuda"`` if its parameters are device
    arrays, else ``"cpu"`` (also for a model without parameters)."""
    if any(m.kernel_set == "reference" for _, m in model.named_modules()):
        return "reference"
    params = model.parameters()
    return device_of(params[0].data) if params else "cpu"


def to_same_device(a: np.ndarray, like: Any) -> Any:
    """``a`` (host) uploaded when ``like`` is a device array, else ``a`` itself."""
    return to_device(a) if is_device(like) else a


def zeros(shape: tuple[int, ...], dtype: np.dtype, like: Any) -> Any:
    """Zeros of ``shape`` and ``dtype`` on ``like``'s device."""
    if is_device(like):
        return _cuda().zeros(shape, dtype)
    return np.zeros(shape, dtype)


def full_like(a: Any, value: float) -> Any:
    """An array of ``a``'s shape and dtype filled with ``value``, on ``a``'s device."""
    if is_device(a):
        return _cuda().full(a.shape, a.dtype, value)
    return np.full_like(a, value)
