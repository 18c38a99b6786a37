"""Read the worker's timing lines from its log (``<LAXAI_HOME>/logs/<task_id>.log``).

``worker/training.py`` logs two lines per attempt for this:
``first training batch done at unix T`` and
``training call: started at unix T, took S s (CPU C s), peak RSS M MiB``.
With PYTHONPROFILEIMPORTTIME=1 in the worker's environment, Python also writes
one ``import time:`` line per module to the log (stderr), so the import time of
that very process up to its first batch can be summed (``import_seconds``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FIRST_BATCH = re.compile(r"first training batch done at unix ([0-9.]+)")
# "import time: <self us> | <cumulative us> | <indent><module>"; no indent: a top-level import.
IMPORT_TIME = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| ( *)\S")
TRAINING_CALL = re.compile(
    r"training call: started at unix ([0-9.]+), took ([0-9.]+) s \(CPU ([0-9.]+) s\), peak RSS ([0-9.]+) MiB")


@dataclass
class WorkerTimes:
    first_batch: float | None = None  # unix time the first batch ended
    train_started: float | None = None  # unix time model.train(...) was called
    train_seconds: float | None = None  # how long model.train(...) took
    train_cpu: float | None = None  # CPU seconds of the whole process (all threads) meanwhile
    peak_rss_mib: float | None = None  # the process's peak RSS when train() returned


def read(path: Path) -> WorkerTimes:
    """The timing lines of the latest attempt in a worker log (empty when missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return WorkerTimes()
    times = WorkerTimes()
    batches = FIRST_BATCH.findall(text)
    if batches:
        times.first_batch = float(batches[-1])
    calls = TRAINING_CALL.findall(text)
    if calls:
        start, seconds, cpu, rss = calls[-1]
        times.train_started, times.train_seconds = float(start), float(seconds)
        times.train_cpu, times.peak_rss_mib = float(cpu), float(rss)
    return times


def import_seconds(path: Path, until: str = "first training batch done") -> tuple[float, int]:
    """(seconds, modules) of top-level imports logged before the first line containing ``until``;
    the last attempt's only when the log holds several."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0.0, 0
    text = text[max(0, text.rfind("--- attempt ")):]
    total_us, modules = 0, 0
    for line in text.splitlines():
        if until in line:
            break
        match = IMPORT_TIME.match(line.rsplit("\r", 1)[-1])
        if match:
            modules += 1
            if not match.group(2):
                total_us += int(match.group(1))
    return total_us / 1e6, modules
