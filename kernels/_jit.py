"""The only place where Numba options live.

Every kernel body is written once with ``numba.prange`` and compiled twice, lazily, on
first call: a serial variant (``prange`` runs as ``range``) and a parallel one. Both
are cached on disk (``cache=True``). Numba's cache index does not include compile
flags, so the two variants get distinct qualified names and hence distinct cache files.

When the package folder is read-only, Numba itself falls back to a per-user cache
folder (``$NUMBA_CACHE_DIR`` if set, else the user cache folder, e.g. ``~/.cache/numba``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numba

# Fast-math flags that keep IEEE NaN and inf semantics (no ``nnan``/``ninf``) and keep
# the order of floating-point reductions (no ``reassoc``): only fused multiply-add
# contraction and ignoring the sign of zero.
FASTMATH = frozenset({"contract", "nsz"})


def _renamed(fn: Callable, suffix: str) -> Callable:
    """Return a copy of ``fn`` whose qualified name ends with ``suffix``."""
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__
    )
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


def helper(fn: Callable) -> Callable:
    """Compile a small jitted helper called from kernels (keep it in the kernel's file)."""
    return numba.njit(cache=True, fastmath=set(FASTMATH))(fn)


class Kernel:
    """A kernel body compiled lazily into a serial and a parallel variant.

    Parameters
    ----------
    fn : callable
        The kernel body, written with ``numba.prange`` for its outer loop.
    """

    def __init__(self, fn: Callable) -> None:
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.serial = numba.njit(cache=True, fastmath=set(FASTMATH), parallel=False)(
            _renamed(fn, "_serial")
        )
        self.parallel = numba.njit(cache=True, fastmath=set(FASTMATH), parallel=True)(
            _renamed(fn, "_parallel")
        )

    def __call__(self, *args: Any, parallel: bool = True) -> Any:
        """Run the parallel (default) or serial variant."""
        return (self.parallel if parallel else self.serial)(*args)


def kernel(fn: Callable) -> Kernel:
    """Decorator: turn a kernel body into a :class:`Kernel` (serial + parallel)."""
    return Kernel(fn)
