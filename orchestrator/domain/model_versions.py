"""Model versions compared and promoted: alias names, the baseline a run is compared with, the deltas.

A registered model name has versions (v1, v2, …, one per completed job, orchestrator/registry) and
aliases: ``production`` (what the Promote button sets) or any name ``ALIAS`` allows, each pointing
at one version per tenant. The completion reply compares a run with the *baseline*: the best
earlier version of the same name by mAP50-95. The worker picks it when it registers the run
(worker/baseline.py) and it rides on the job's closing write (``job.artifacts.baseline``), so the
notifier's plan stays a pure function of the job and no extra job write is made. Pure domain code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.cost import format_usd
from orchestrator.domain.durations import duration
from orchestrator.domain.errors import FieldError, SpecError

PRODUCTION = "production"
# Lower-case letters, digits, '-' and '_', starting with a letter: safe as a W&B alias and a URL part.
ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,39}")
ALIAS_ALLOWED = "1-40 lower-case letters, digits, '-' or '_', starting with a letter (e.g. production, staging)"
VERSION = re.compile(r"[vV]?([0-9]{1,9})")
MAP50_95, MAP50 = "mAP50-95", "mAP50"


class Baseline(BaseModel):
    """The best earlier version of a run's model name, as the run's completion compares itself with it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int
    task_id: str
    map50_95: float
    map50: float | None = None
    cost_usd: float | None = None  # None: that job's record was gone
    wall_seconds: float | None = None


def check_alias(name: str, field: str = "alias") -> str:
    """The alias name, or SpecError naming ``field`` and what is allowed."""
    if not isinstance(name, str) or not ALIAS.fullmatch(name):
        raise SpecError([FieldError(field, f"must be {ALIAS_ALLOWED} (got {str(name)[:60]!r})")])
    return name


def parse_version(text: str, field: str = "version") -> int:
    """``3`` or ``v3`` as 3; SpecError naming ``field`` otherwise."""
    match = VERSION.fullmatch(str(text).strip())
    if not match or int(match.group(1)) < 1:
        raise SpecError([FieldError(field, f"must be a version number such as v3 or 3 (got {str(text)[:40]!r})")])
    return int(match.group(1))


def map_of(metrics: dict[str, float], kind: str = MAP50_95) -> float | None:
    """mAP50-95 (or mAP50) from a run's metrics, as the worker names them (worker/training.py)."""
    value = metrics.get(kind)
    return float(value) if isinstance(value, (int, float)) else None


def wall_seconds(started: datetime | None, finished: datetime | None) -> float | None:
    """A run's wall time, as its completion reply shows it."""
    if started is None or finished is None:
        return None
    return max(0.0, (finished - started).total_seconds())


def best_earlier(candidates: Iterable[tuple[int, str, dict[str, float]]], version: int) -> tuple[int, str] | None:
    """(version, task id) of the best version before ``version`` by mAP50-95, from (version, task id,
    metrics); the newest wins a tie; None when no earlier version has the metric."""
    scored = [(map_of(metrics), v, task) for v, task, metrics in candidates if v < version]
    scored = [s for s in scored if s[0] is not None]
    if not scored:
        return None
    _, best, task = max(scored)
    return best, task


def _signed(value: float, unit: str = "", digits: int = 3) -> str:
    sign = "+" if value > 0 else "\u2212" if value < 0 else "\u00b1"
    return f"{sign}{abs(value):.{digits}f}{unit}"


def _signed_usd(usd: float) -> str:
    usd = round(usd, 4)
    sign = "+" if usd > 0 else "\u2212" if usd < 0 else "\u00b1"
    return f"{sign}{format_usd(abs(usd))}"


def _signed_seconds(seconds: float) -> str:
    sign = "+" if seconds > 0.5 else "\u2212" if seconds < -0.5 else "\u00b1"
    return f"{sign}{duration(abs(seconds))}"


def comparison(baseline: Baseline, metrics: dict[str, float], cost_usd: float, wall: float | None) -> str:
    """``v2 (best earlier, mAP50-95 0.390): mAP50-95 +0.041 · mAP50 +0.020 · cost −$0.12 · wall time +1m 05s``."""
    parts = []
    current = map_of(metrics)
    if current is not None:
        parts.append(f"mAP50-95 {_signed(current - baseline.map50_95)}")
    current50 = map_of(metrics, MAP50)
    if current50 is not None and baseline.map50 is not None:
        parts.append(f"mAP50 {_signed(current50 - baseline.map50)}")
    if baseline.cost_usd is not None:
        delta = cost_usd - baseline.cost_usd
        parts.append(f"cost {_signed_usd(delta)}")
    if baseline.wall_seconds is not None and wall is not None:
        parts.append(f"wall time {_signed_seconds(wall - baseline.wall_seconds)}")
    return f"v{baseline.version} (best earlier, mAP50-95 {baseline.map50_95:.3f}): " + " \u00b7 ".join(parts)
