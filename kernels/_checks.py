"""Input validation shared by the kernel wrappers (plain Python, never jitted).

Every failure is a ``ValueError`` naming the op, the argument, what was expected
(the layout in shape names, e.g. ``(N, C, H, W)``) and what was given.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(op: str, name: str, a: object, layout: str) -> np.ndarray:
    """Return ``a`` as a C-contiguous float32/float64 array with ``len(layout)`` dims.

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
    numpy.ndarray
        ``a`` itself when already C-contiguous, else a C-contiguous copy.
    """
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{op}: {name} must be a numpy array {layout}, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{op}: {name} must be float32 or float64 with shape {layout}, got dtype {a.dtype}"
        )
    names = [s for s in layout.strip("()").split(",") if s.strip()]
    if "..." in layout:
        if a.ndim < len(names) - 1:
            raise ValueError(f"{op}: {name} must have shape {layout}, got shape {a.shape}")
    elif a.ndim != len(names):
        raise ValueError(
            f"{op}: {name} must have shape {layout} ({len(names)}-d), got shape {a.shape}"
        )
    return np.ascontiguousarray(a)


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
    pair = (value, value) if _is_int(value) else value
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
