"""Stop signals: Ctrl-C (under MPI also SIGTERM and SIGUSR1) ends training at the next step
boundary, after a checkpoint, instead of killing it mid-write."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StopFlag:
    """A signal handler that sets :attr:`requested`; a second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def stop_flag(signals: tuple[int, ...]) -> Iterator[StopFlag]:
    """A :class:`StopFlag` set by any of ``signals`` while the block runs (the previous
    handlers come back after it); outside the main thread, a flag no signal sets."""
    flag, previous = StopFlag(), {}
    try:
        for s in signals:
            previous[s] = signal.signal(s, flag)
    except ValueError:  # not the main thread (or not a signal): no handler at all
        _restore(previous)
        previous = {}
    try:
        yield flag
    finally:
        _restore(previous)


def _restore(handlers: dict[int, Any]) -> None:
    """Put back the signal handlers ``handlers`` (signal number -> handler)."""
    for s, handler in handlers.items():
        signal.signal(s, handler)
