"""The only place where Numba options live.

Every kernel body is written once with ``numba.prange`` and compiled twice, lazily, on
first call: a serial variant (``prange`` runs as ``range``) and a parallel one. Both
are cached on disk (``cache=True``). Numba's cache index does not include compile
flags, so the two variants get distinct qualified names and hence distinct cache files.

Chunk kernels (``chunk_kernel``) are the exception, for large kernels whose batch splits
into a few independent chunks (convolution): the body processes one chunk and is compiled
once (serial, ``nogil``), and a small launcher compiled with ``parallel=True`` calls it
for every chunk in a ``prange`` loop. A ``prange`` kernel costs two compiles, and Numba's
parallel-loop pipeline compiles the loop body again and re-optimizes all the code it calls
twice more. Measured for the convolution (forward + backward, float32, cold): 13 s serial
and 19 s parallel as ``prange`` kernels, 10 s for chunk kernels that serve both. Their
chunks ran on Python threads until 2026-12: handing a chunk to a Python thread (and the
GIL back) cost 25-50 us, against 2 us for a parallel region of Numba's threads while they
spin (``GOMP_SPINCOUNT`` below), which lets an image split over both cores pay at batch 1.

When the package folder is read-only, Numba itself falls back to a per-user cache
folder (``$NUMBA_CACHE_DIR`` if set, else the user cache folder, e.g. ``~/.cache/numba``).

Register tiles are written as explicit LLVM vector code (``kernels.conv.tile_ir``), not left
to LLVM's SLP vectorizer, which Numba ships switched off (numba issue 8705) and which packed
the former scalar-accumulator tile into too few registers on AVX-512.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

from numba.core import event
from numba.core import types as nb_types
from numba.core.registry import CPUDispatcher

# Idle worker threads spin briefly, then sleep. Numba's OpenMP threading layer (libgomp)
# and SciPy's OpenBLAS (behind Numba's ``np.dot``) both busy-wait after each parallel region
# by default (libgomp 300,000 spins), so on a machine with few cores their idle workers
# steal the cores from the threads doing the next kernel: measured on the 2-core dev VM, a
# VGG training step took 220 ms with the defaults and 110 ms with passive waiting. But a
# sleeping worker takes 20-40 us to wake, against 2 us for a spinning one (a ``prange(2)``
# region; 2-core AMD EPYC Zen 4, 2026-12-08), and a step of an inference plan at batch 1
# is 10-30 us: with ``GOMP_SPINCOUNT=5000`` (OpenMP's passive policy otherwise) libgomp's
# workers spin for 100-300 us there before sleeping, long enough to bridge the Python code
# between two kernels, short enough not to hold a core through anything longer.
# Measured on that machine: the plan at batch 1 took 220 us with passive workers (its
# layers on one thread) and 135 us with these settings (each image split over both).
# The libraries read these once, when they load, which is after this import (on the first
# parallel kernel and the first ``np.dot``); a value the user set already wins.
WAIT_POLICY = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "GOMP_SPINCOUNT": "5000",
    "OPENBLAS_THREAD_TIMEOUT": "4",
}
for _name, _value in WAIT_POLICY.items():
    os.environ.setdefault(_name, _value)

# Inputs smaller than this run the serial variant even when the parallel one is asked for:
# waking the thread pool costs more than the work (about 13 us on the 2-core dev VM). A
# kernel scales it by its ``size_factor`` (``@kernel(size_factor=...)``), measured: the
# serial/parallel crossover is near 65,536 values for an SGD update and about 300,000 for
# a ReLU (0.17 ns per value). Adam's is about 13,000 (2 ns per value), but its variants
# round differently (LLVM contracts its multiply-adds differently in each): moving its
# threshold would change the arithmetic of every default training run, for 0.1% of a step.
PARALLEL_MIN_SIZE = 1 << 16

# Fast-math flags that keep IEEE NaN and inf semantics (no ``nnan``/``ninf``) and keep
# the order of floating-point reductions (no ``reassoc``): only fused multiply-add
# contraction and ignoring the sign of zero.
FASTMATH = frozenset({"contract", "nsz"})

# Options of every compile. ``error_model="numpy"``: a float division by zero gives inf or
# NaN, as in NumPy (the references), instead of raising ZeroDivisionError. Numba's default
# ("python") guards every division with a branch that raises, and that branch stops LLVM
# from vectorizing the loop: Adam's update on 36,864 float32 values (one thread) took
# 197 us scalar and takes 81 us vectorized (the NumPy reference: 137 us) on the 2-core VM.
ERROR_MODEL = "numpy"


def renamed(fn: Callable, suffix: str, **names: Any) -> Callable:
    """Return a copy of ``fn`` whose qualified name ends with ``suffix`` (so that Numba's
    cache keeps its compiled code apart from ``fn``'s) and whose global ``names`` are
    replaced (a variant: e.g. another register tile)."""
    scope = {**fn.__globals__, **names} if names else fn.__globals__
    copy = types.FunctionType(
        fn.__code__, scope, fn.__name__ + suffix, fn.__defaults__, fn.__closure__
    )
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


class _FirstCompile(event.Listener):
    """Calls ``say()`` when the first compile starts (cache loads are not compiles)."""

    def __init__(self, say: Callable[[], None]) -> None:
        self.say = say
        self.started = False

    def on_start(self, ev: event.Event) -> None:
        if not self.started:
            self.started = True
            self.say()

    def on_end(self, ev: event.Event) -> None:
        pass


@contextlib.contextmanager
def compile_notice(say: Callable[[], None]) -> Iterator[None]:
    """Within the block, call ``say()`` once, as Numba starts compiling for the first time
    (any thread); not at all when every kernel comes from the cache."""
    with event.install_listener("numba:compile", _FirstCompile(say)):
        yield


class _HelperDispatcher(CPUDispatcher):
    """Dispatcher of a helper: one compiled specialization per argument *type*.

    Called from jitted code, a plain Numba function is specialized on the values of literal
    arguments (``f(x, 0)`` and ``f(x, 1)`` compile twice, as do tuples holding literals),
    and every specialization costs compile time in each kernel that links it."""

    def get_call_template(self, args, kws):
        """Resolve the call with literal argument types replaced by their base types."""
        args = tuple(nb_types.unliteral(a) for a in args)
        kws = {k: nb_types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def _dispatcher(cls: type, fn: Callable, **flags: Any) -> Any:
    """``fn`` lazily compiled by a dispatcher of class ``cls`` with fastnet's options, cached
    on disk (a fresh fastmath set each: Numba keeps a reference to it)."""
    options = {"nopython": True, "fastmath": set(FASTMATH), "error_model": ERROR_MODEL}
    disp = cls(fn, targetoptions={**options, **flags})
    disp.enable_caching()
    return disp


def helper(fn: Callable) -> Callable:
    """Compile a small jitted helper called from kernels (keep it in the kernel's file)."""
    return _dispatcher(_HelperDispatcher, fn)


class Kernel:
    """A kernel body compiled lazily into a serial and a parallel variant.

    Parameters
    ----------
    fn : callable
        The kernel body, written with ``numba.prange`` for its outer loop.
    size_factor : float
        The parallel variant runs from ``size_factor * PARALLEL_MIN_SIZE`` elements on
        (cheap work per element: more than 1; expensive: less).
    """

    def __init__(self, fn: Callable, size_factor: float = 1.0) -> None:
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.size_factor = size_factor
        self.serial = _dispatcher(CPUDispatcher, renamed(fn, "_serial"))
        self.parallel = _dispatcher(CPUDispatcher, renamed(fn, "_parallel"), parallel=True)

    def __call__(self, *args: Any, parallel: bool = True) -> Any:
        """Run the parallel (default) or serial variant; the serial one if the first argument
        (an array) has fewer than ``size_factor * PARALLEL_MIN_SIZE`` elements."""
        use_parallel = parallel and args[0].size >= self.size_factor * PARALLEL_MIN_SIZE
        return (self.parallel if use_parallel else self.serial)(*args)


def kernel(fn: Callable | None = None, *, size_factor: float = 1.0) -> Any:
    """Decorator, bare or with options (``@kernel(size_factor=4)``): turn a kernel body into
    a :class:`Kernel` (serial + parallel)."""
    if fn is None:
        return lambda body: Kernel(body, size_factor)
    return Kernel(fn, size_factor)


class ChunkKernel:
    """A kernel body for one chunk of a batch, compiled once, and its launcher, which runs
    every chunk on Numba's threads.

    Parameters
    ----------
    fn : callable
        ``fn(*args, t, chunks)`` computes chunk ``t`` of ``chunks``: it must write only its
        own part of the outputs (its images, its row of per-chunk partial results).
    launch : callable
        ``launch(*args, chunks)``: ``fn(*args, t, chunks)`` for every ``t`` in a
        ``numba.prange`` loop (it unpacks the tuples of arrays among ``args`` before the
        loop: a parallel loop cannot capture them) and nothing else; it is compiled with
        ``parallel=True`` and calls the compiled body, which is compiled once.
    """

    def __init__(self, fn: Callable, launch: Callable) -> None:
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.body = _dispatcher(CPUDispatcher, fn, nogil=True)
        self.threads = _dispatcher(
            CPUDispatcher, renamed(launch, "_" + fn.__name__, _body=self.body), parallel=True
        )

    def __call__(self, *args: Any, chunks: int, parallel: bool = True) -> None:
        """Run every chunk (``runner``)."""
        self.runner(chunks, parallel)(*args)

    def runner(self, chunks: int, parallel: bool = True) -> Callable[..., None]:
        """``run(*args)``, which runs every chunk: on Numba's threads, or in turn in this
        thread (serial, or a single chunk: a parallel region costs a wake-up of the
        threads)."""
        if parallel and chunks > 1:
            return lambda *args: self.threads(*args, chunks)
        if chunks == 1:
            return lambda *args: self.body(*args, 0, 1)

        def in_turn(*args: Any) -> None:
            for t in range(chunks):
                self.body(*args, t, chunks)

        return in_turn


def chunk_kernel(fn: Callable, launch: Callable) -> ChunkKernel:
    """Turn a one-chunk body and its launcher into a :class:`ChunkKernel`."""
    return ChunkKernel(fn, launch)
