"""Training curves as a PNG: a job's epoch rows (orchestrator/domain/epochs.py) drawn by matplotlib.

``render(rows, starts, title)`` is a pure function, rows in, PNG bytes out: a losses panel
(train solid, validation dashed, one colour per loss) and an mAP panel (mAP50, mAP50-95), x the
epoch, with a dotted line where a new execution of the job began ("continued" after a planned
continuation, "resumed" after an interruption or a lost worker). Headless: the Agg canvas, no
pyplot and no global figure state, so the REST handler and the Slack notifier may draw at once.
The PNG's text chunks say what it shows (``Epochs``, ``Attempts``), for programs and tests.

matplotlib is imported on first use (it takes a second); ``MPLCONFIGDIR`` falls back to a
temporary directory when the home directory is not writable (the service image runs as nobody).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.domain.epochs import LOSSES, EpochRow, attempt_starts
from orchestrator.domain.job import Job

WIDTH, HEIGHT, DPI = 9.0, 3.4, 90  # 810 x 306 px: legible in a Slack thread, well under 200 KB
COLOURS = {"box": "#1f77b4", "cls": "#d62728", "dfl": "#2ca02c", "map50": "#9467bd", "map50_95": "#ff7f0e"}
MARKERS_UNTIL = 40  # draw points too while there are few epochs (a single epoch is a point, not a line)
_lock = threading.Lock()  # matplotlib's font cache and text layout are not guaranteed thread-safe


class NoEpochs(ValueError):
    """The job has no finished epoch yet: nothing to draw."""


def job_png(job: Job) -> bytes:
    """The job's curves; NoEpochs when no epoch has finished."""
    if not job.epochs:
        raise NoEpochs(f"job {job.task_id} has no finished epoch yet: no curves to draw")
    name = job.spec.custom_name or job.task_id[:8]
    return render(job.epochs, attempt_starts(job), f"{name} · {job.spec.model_params.architecture}")


def render(rows: Sequence[EpochRow], starts: Mapping[int, str] | None = None, title: str = "") -> bytes:
    """PNG bytes of the curves of ``rows`` (any order); ``starts``: {attempt: label} to mark."""
    if not rows:
        raise NoEpochs("no epoch rows to draw")
    rows = sorted(rows, key=lambda r: r.epoch)
    with _lock:
        figure = _figure(rows, dict(starts or {}), title)
        buffer = io.BytesIO()
        metadata = {"Title": title or "training curves", "Software": "laxai-train",
                    "Epochs": str(len(rows)), "Attempts": ",".join(str(a) for a in _attempts(rows))}
        figure.savefig(buffer, format="png", dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def _figure(rows: list[EpochRow], starts: dict[int, str], title: str) -> Any:
    _config_dir()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH, HEIGHT), layout="constrained")
    losses, maps = figure.subplots(1, 2)
    epochs = [r.epoch for r in rows]
    marker = "o" if len(rows) <= MARKERS_UNTIL else None
    for name in LOSSES:
        _line(losses, epochs, [getattr(r, name) for r in rows], f"train {name}", COLOURS[name], "-", marker)
        _line(losses, epochs, [getattr(r, f"val_{name}") for r in rows], f"val {name}", COLOURS[name], "--", marker)
    _line(maps, epochs, [r.map50 for r in rows], "mAP50", COLOURS["map50"], "-", marker)
    _line(maps, epochs, [r.map50_95 for r in rows], "mAP50-95", COLOURS["map50_95"], "-", marker)
    losses.set_title("losses", fontsize=10)
    maps.set_title("mAP", fontsize=10)
    maps.set_ylim(bottom=0, top=max(0.05, maps.get_ylim()[1]))  # an all-zero mAP still gets an axis
    for axes in (losses, maps):
        axes.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        axes.set_xlabel("epoch", fontsize=9)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        _mark_starts(axes, rows, starts)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7, loc="best", ncol=2 if axes is losses else 1)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _line(axes: Any, epochs: list[int], values: list[float | None], label: str, colour: str, style: str,
          marker: str | None) -> None:
    """One curve; missing values leave gaps, a curve with none is not drawn (nor in the legend)."""
    if all(v is None for v in values):
        return
    ys = [float("nan") if v is None else v for v in values]
    axes.plot(epochs, ys, style, color=colour, label=label, marker=marker, markersize=3, linewidth=1.4)


def _mark_starts(axes: Any, rows: list[EpochRow], starts: dict[int, str]) -> None:
    """A dotted line before the first epoch of each marked attempt, labelled at the top."""
    first = {}
    for row in rows:
        first.setdefault(row.attempt, row.epoch)
    for attempt, label in starts.items():
        if attempt not in first:
            continue
        x = first[attempt] - 0.5
        axes.axvline(x, color="#555555", linestyle=":", linewidth=1)
        axes.annotate(label, xy=(x, 1), xycoords=("data", "axes fraction"), xytext=(2, -2),
                      textcoords="offset points", fontsize=7, color="#555555", va="top")


def _attempts(rows: Sequence[EpochRow]) -> list[int]:
    return sorted({r.attempt for r in rows})


def _config_dir() -> None:
    """matplotlib wants a writable config/cache directory; a home-less service user has none."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = os.path.expanduser("~")
    if not os.access(home, os.W_OK):
        os.environ["MPLCONFIGDIR"] = os.path.join(tempfile.gettempdir(), f"laxai-matplotlib-{os.getuid()}")
