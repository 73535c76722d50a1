"""Input validation shared by the kernel wrappers (plain Python, never jitted).

Every failure is a ``ValueError`` naming the op, the argument, what was expected
(the layout in shape names, e.g. ``(N, C, H, W)``) and what was given.

numba CUDA device arrays are accepted wherever a float array is: their dtype, shape and
C-contiguity are checked and they are never copied. ``cuda_impl`` tells a wrapper whether
to dispatch to its family's ``cuda.py``; this module never imports ``numba.cuda`` itself
(device arrays can only exist once something else has).
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device(a: object) -> bool:
    """True for a numba CUDA device array (the simulator's included)."""
    mod = sys.modules.get("numba.cuda")
    return mod is not None and bool(mod.devicearray.is_cuda_ndarray(a))


def on_device(*arrays: object) -> bool:
    """True when any of ``arrays`` is a numba CUDA device array (``None`` entries ignored)."""
    return any(is_device(a) for a in arrays)


def cuda_impl(op: str, family: str, **arrays: object) -> ModuleType | None:
    """``kernels.<family>.cuda`` when ``arrays`` are device arrays, None when host arrays.

    ``None`` values are skipped. A mix of host and device arrays is a ``ValueError``
    naming both groups (nothing is copied between them implicitly).
    """
    where = {name: is_device(a) for name, a in arrays.items() if a is not None}
    if not any(where.values()):
        return None
    if not all(where.values()):
        dev = ", ".join(n for n, d in where.items() if d)
        host = ", ".join(n for n, d in where.items() if not d)
        raise ValueError(
            f"{op}: arrays must all be on the same device, got device arrays ({dev}) "
            f"and host arrays ({host})"
        )
    return importlib.import_module(f"kernels.{family}.cuda")


def float_array(op: str, name: str, a: Any, layout: str) -> np.ndarray:
    """Return ``a`` as a C-contiguous float32/float64 array with ``len(layout)`` dims.

    A numba CUDA device array is checked the same way and returned as is; it must already
    be C-contiguous (device arrays are never copied silently).

    Parameters
    ----------
    op : str
        Name of the calling op, used in error messages.
    name : str
        Name of the argument.
    a : object
        The value to check.
    layout : str
        Expected layout in shape names, e.g. ``"(N, C, H, W)"``; its number of names
        is the expected ``ndim``. ``"(N, ...)"`` accepts any ``ndim >= 1``.

    Returns
    -------
    numpy.ndarray or device array
        ``a`` itself when already C-contiguous, else a C-contiguous copy (host only).
    """
    device = not isinstance(a, np.ndarray) and is_device(a)
    if not (device or isinstance(a, np.ndarray)):
        raise ValueError(f"{op}: {name} must be a numpy array {layout}, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{op}: {name} must be float32 or float64 with shape {layout}, got dtype {a.dtype}"
        )
    ndim, any_ndim = _ndim(layout)
    if any_ndim:
        if a.ndim < ndim:
            raise ValueError(f"{op}: {name} must have shape {layout}, got shape {a.shape}")
    elif a.ndim != ndim:
        raise ValueError(f"{op}: {name} must have shape {layout} ({ndim}-d), got shape {a.shape}")
    return device_contiguous(op, name, a) if device else np.ascontiguousarray(a)


@functools.cache
def _ndim(layout: str) -> tuple[int, bool]:
    """``(number of shape names, whether "..." allows more)`` of a layout like ``(N, C)``."""
    names = [s for s in layout.strip("()").split(",") if s.strip()]
    return (len(names) - 1, True) if "..." in layout else (len(names), False)


def device_contiguous(op: str, name: str, a: Any) -> Any:
    """Return the device array ``a`` if C-contiguous, else raise (it is never copied)."""
    if not a.is_c_contiguous():
        raise ValueError(f"{op}: device array {name} must be C-contiguous, got a strided view")
    return a


def same_dtype(op: str, **arrays: np.ndarray) -> np.dtype:
    """Check that all ``arrays`` share one dtype and return it (no silent promotion)."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    first = next(iter(dtypes.values()))
    if any(d != first for d in dtypes.values()):
        given = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise ValueError(f"{op}: all arrays must have the same float dtype, got {given}")
    return first


def shape_is(op: str, name: str, a: np.ndarray, expected: tuple[int, ...], layout: str) -> None:
    """Raise unless ``a.shape == expected``."""
    if a.shape != tuple(expected):
        raise ValueError(
            f"{op}: {name} must have shape {layout} = {tuple(expected)}, got {a.shape}"
        )


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def int_pair(op: str, name: str, value: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    """Return ``value`` as a pair of ints ``>= minimum`` (an int means the same for H and W)."""
    pair: Any = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(map(_is_int, pair)):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def positive_float(op: str, name: str, value: float, minimum: float = 0.0) -> float:
    """Return ``value`` as a finite float ``>= minimum`` or raise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < minimum:
        raise ValueError(f"{op}: {name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)
