"""SIGTERM/SIGINT handling: only raise a flag; training stops at the next batch and requeues.

Cloud Run gives about 10 s between SIGTERM and SIGKILL, enough to finish the
current batch, wait briefly for the last checkpoint upload and write one
transition. A second Ctrl-C interrupts at once (for people at a terminal).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from worker.stop import StopFlags, StopReason

Handler = Callable[[int, Any], None]


def install(flags: StopFlags) -> Handler:
    """Route SIGTERM and SIGINT to ``flags``; returns the handler (for ``ensure``)."""

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and flags.is_set(StopReason.SIGTERM):
            raise KeyboardInterrupt
        flags.set(StopReason.SIGTERM)
        # os.write, not logging: a handler may run while the logging lock is held.
        os.write(2, f"worker: {signal.Signals(signum).name} received; stopping at the next batch\n".encode())

    ensure(on_signal)
    return on_signal


def ensure(handler: Handler) -> None:
    """(Re)install ``handler``; libraries started after us (W&B) must not have replaced it."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
