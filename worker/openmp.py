"""OpenMP threads that sleep when they have nothing to do; set before torch loads.

torch's CPU kernels run on GNU OpenMP (libgomp), whose idle threads spin,
busy-waiting on a core, before they sleep. Alone on a machine that costs
nothing; with other trainings beside it (several local workers, a laptop's
other work, a test suite) every spinning thread takes a core a training
needs, and each training waits for threads that are spinning elsewhere.
Measured on this project's 2-core machine while it was busy: 40 steps of
yolov8n at 128 px took 133 CPU-s and 289 s with libgomp's default, 19 CPU-s
and 37 s with ``OMP_WAIT_POLICY=PASSIVE`` (18 CPU-s and 62 s on one thread).
libgomp reads the variable once, when torch loads it, so the worker sets it
before any import of torch; an operator's own value is kept.
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def sleep_when_idle() -> None:
    """Make OpenMP's idle threads sleep instead of spin, unless the environment says otherwise."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
