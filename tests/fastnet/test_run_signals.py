"""``fastnet.run.signals``: a stop signal sets a flag (training stops at the next step), a
second one stops at once, and the previous handlers come back after the block."""

from __future__ import annotations

import signal
import threading

import pytest

from fastnet.run.signals import StopFlag, stop_flag


@pytest.fixture
def own_handlers():
    """SIGUSR1 and SIGUSR2 handlers of this test, which record the signals they get; the
    handlers from before the test come back after it."""
    got: list[int] = []

    def record(signum, frame):
        got.append(signum)

    previous = {s: signal.signal(s, record) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    yield record, got
    for s, handler in previous.items():
        signal.signal(s, handler)


def test_a_signal_sets_the_flag_and_a_second_stops_at_once(own_handlers):
    record, got = own_handlers
    with pytest.raises(KeyboardInterrupt):
        with stop_flag((signal.SIGUSR1,)) as flag:
            assert isinstance(flag, StopFlag) and flag.requested is False
            assert signal.getsignal(signal.SIGUSR1) is flag
            signal.raise_signal(signal.SIGUSR1)
            assert flag.requested is True
            signal.raise_signal(signal.SIGUSR1)
            pytest.fail("the second signal did not stop the block")
    assert signal.getsignal(signal.SIGUSR1) is record  # back after the interrupt too
    assert got == []  # neither signal reached the previous handler
    signal.raise_signal(signal.SIGUSR1)
    assert got == [signal.SIGUSR1]


def test_every_signal_listed_sets_the_one_flag_and_all_handlers_come_back(own_handlers):
    record, got = own_handlers
    sigint = signal.getsignal(signal.SIGINT)
    with stop_flag((signal.SIGUSR1, signal.SIGUSR2)) as flag:
        assert signal.getsignal(signal.SIGINT) is sigint  # a signal not listed is left alone
        signal.raise_signal(signal.SIGUSR2)
        assert flag.requested is True
    assert [signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)] == [record, record]
    assert got == []


def test_the_handlers_come_back_when_the_block_raises(own_handlers):
    record, _ = own_handlers
    with pytest.raises(RuntimeError, match="boom"):
        with stop_flag((signal.SIGUSR1,)):
            raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGUSR1) is record


def test_outside_the_main_thread_a_flag_no_signal_sets(own_handlers):
    record, _ = own_handlers
    seen = []

    def body():
        with stop_flag((signal.SIGUSR1,)) as flag:
            seen.append((flag.requested, signal.getsignal(signal.SIGUSR1)))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=30)
    assert seen == [(False, record)]
    assert signal.getsignal(signal.SIGUSR1) is record
