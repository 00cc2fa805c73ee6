"""Stopping a run from outside: Ctrl-C (SIGINT) and SIGTERM end it with exit status 130 and one line.

``sigterm_as_interrupt`` turns SIGTERM (sent by ``kill``, job schedulers, ``timeout``) into ``KeyboardInterrupt``
for the duration of a ``with`` block, so that both signals unwind through the same ``finally`` clauses:
atomic writes remove their temporary file and nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "sigterm_as_interrupt"]

#: Exit status of an interrupted run (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt`` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
