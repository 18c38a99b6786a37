"""What every item shares: the run context, the Result it returns, and small statistics.

A Result holds the item's numbers (``Measure``), its target in words, whether
the target is met (None: the item has no target, or it could not run here), a
note when it is missed (why, and what would fix it) and free-form detail lines
for BENCHMARKS.md.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class NotHere(Exception):
    """Raised by an item that cannot run on this machine or checkout (no GPU, no bot/): not an error.
    ``measures`` and ``details`` say what it could still check here."""

    def __init__(self, why: str, measures: list | None = None, details: list[str] | None = None):
        super().__init__(why)
        self.measures, self.details = measures or [], details or []


@dataclass
class Context:
    """How the run was asked for: sizes (``quick``) and where scratch files go."""

    quick: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="laxai-bench-")))

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pick(self, quick, full):  # noqa: ANN001, ANN201 - any value
        """``quick`` in --quick runs, else ``full``."""
        return quick if self.quick else full


@dataclass
class Measure:
    """One measured number, shown as ``label value unit``."""

    label: str
    value: float | None
    unit: str = ""
    digits: int = 1

    def text(self) -> str:
        if self.value is None:
            return f"{self.label} n/a"
        shown = f"{self.value:.{self.digits}f}"
        return f"{self.label} {shown}{(' ' + self.unit) if self.unit else ''}".strip()


@dataclass
class Result:
    """An item's outcome."""

    key: str
    title: str
    target: str
    measures: list[Measure] = field(default_factory=list)
    met: bool | None = None
    note: str = ""  # for a missed target: why, and what would fix it
    details: list[str] = field(default_factory=list)  # extra lines for BENCHMARKS.md
    skipped: str | None = None  # why the item did not run here
    seconds: float = 0.0  # how long the item took

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "not run"
        return {True: "met", False: "MISSED", None: "-"}[self.met]

    def measured(self) -> str:
        text = "; ".join(m.text() for m in self.measures)
        if self.skipped:
            return f"not run: {self.skipped}" + (f"; {text}" if text else "")
        return text


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: list[float], digits: int = 2) -> str:
    """"median (min-max, n=N)" for detail lines."""
    if not values:
        return "n/a"
    return f"{median(values):.{digits}f} (min {min(values):.{digits}f}, max {max(values):.{digits}f}, n={len(values)})"
