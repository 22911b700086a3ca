"""Ctrl-C and SIGTERM during training: noted at once, acted on between two steps.

A signal that landed inside `optimizer.step()` used to save a half-applied step; deferring it to
the next step boundary keeps every checkpoint a whole number of steps, so resume is exact.
A second signal stops at once (the last complete checkpoint is then what --resume continues).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The name of the first stop signal received ("SIGINT", "SIGTERM"), or None."""

    def __init__(self):
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def _handle(self, number, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal = signal.Signals(number).name


@contextmanager
def deferred_stop():
    """Within this block SIGINT/SIGTERM only set the yielded StopRequest (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request._handle) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
