"""How busy the whole machine was during a time window (from /proc/stat), to tell noise from overhead.

The benchmarks share the machine's cores with other work. ``MachineLoad``
samples the kernel's busy CPU time every 0.25 s on a thread; ``others`` gives
how many cores, on average, something other than a given process used during
a window (its own CPU seconds are known from inside it).
"""

from __future__ import annotations

import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU seconds a process (all its threads) has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def busy_seconds() -> float | None:
    """CPU seconds spent not idle since boot, all cores together."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICK  # user..steal; guest time is already inside user


class MachineLoad:
    def __init__(self, interval: float = 0.25):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="machine-load", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = busy_seconds()
            if value is not None:
                self.samples.append((time.time(), value))
            self._stop.wait(self._interval)

    def __enter__(self) -> MachineLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def busy(self, start: float, end: float) -> float | None:
        """Busy core-seconds between two unix times (from the samples just around them)."""
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        if not before or not after:
            return None
        (t0, b0), (t1, b1) = before[-1], after[0]
        return (b1 - b0) * (end - start) / (t1 - t0) if t1 > t0 else None

    def others(self, start: float, seconds: float, own_cpu: float) -> float | None:
        """Average cores used by everything but the process that spent ``own_cpu`` in the window."""
        busy = self.busy(start, start + seconds)
        return None if busy is None or seconds <= 0 else max(0.0, (busy - own_cpu) / seconds)
