"""The results as a console table and as BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

from bench.core import Result
from bench.items import ITEMS

HEADERS = ("#", "Item", "Measured", "Target", "Met")

METHOD = """\
- Everything runs on this one machine: `laxai serve` as a subprocess, real `python -m worker`
  subprocesses training Ultralytics YOLO on synthetic data, Google's Firestore and Pub/Sub
  emulators for the gcp backend, and the fake Slack Web API of `tests/fakes/fake_slack.py`
  (which enforces Slack's rate limits) as `SLACK_API_URL`. Settings are the defaults unless an
  item says otherwise.
- The machine's cores are shared with other work, so absolute times are noisy: items compare
  ratios within one run, alternate the sides they compare and report medians over repeats. The
  worker-overhead item also reads how busy the rest of the machine was during each run (/proc/stat)
  and takes its ratios from "quiet" pairs (other work under 0.5 cores during both runs), adding
  pairs until it has eight or has run sixteen; every pair is listed.
- Items that submit many jobs (submit throughput, Slack acks) keep them from training: the service
  runs with `MAX_CONCURRENT_JOBS=1` and its one slot is held by a job whose worker is frozen
  (SIGSTOP) before it trains; afterwards the service is stopped and its state discarded.
- HTTP load comes from a small asyncio client on keep-alive connections (`bench/loadgen.py`), so the
  load generator costs little of the CPU it shares with the service.
- The worker logs two timing lines per attempt (`worker/training.py`: when its first batch ended,
  and the `model.train(...)` call's start, wall and CPU time and the process's peak RSS);
  `bench/bare_train.py` reports the same figures, measured the same way, for a bare
  `YOLO(...).train(...)` with the worker's arguments.
- `python -m bench --quick` runs every item at tiny sizes (the CI smoke test,
  `tests/bench/test_bench_smoke.py`); its numbers are not comparable with a full run's.
"""


def _number(key: str) -> int:
    return next(i for i, item in enumerate(ITEMS, 1) if item.key == key)


def rows(results: list[Result]) -> list[tuple[str, ...]]:
    return [(str(_number(r.key)), r.title, r.measured(), r.target, r.verdict) for r in results]


def table(results: list[Result], width: int = 160) -> str:
    """A plain-text table, long cells wrapped."""
    limits = [2, 34, 58, 34, 7]
    wrapped = [[textwrap.wrap(cell, limit) or [""] for cell, limit in zip(row, limits)] for row in rows(results)]
    widths = [max([len(h)] + [len(line) for row in wrapped for line in row[i]]) for i, h in enumerate(HEADERS)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(list(HEADERS)), "-+-".join("-" * w for w in widths)]
    for row in wrapped:
        for k in range(max(len(cell) for cell in row)):
            out.append(line([cell[k] if k < len(cell) else "" for cell in row]))
    return "\n".join(out)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[Result], machine: dict[str, str], quick: bool, started: dt.datetime,
             seconds: float) -> str:
    mode = "quick run (`--quick`: tiny sizes, a smoke test)" if quick else "full run"
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python -m bench` (`make bench`) on {started:%Y-%m-%d %H:%M} UTC: {mode}, "
        f"{seconds / 60:.0f} min in all.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {name} | {_md(value)} |" for name, value in machine.items()],
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
        *["| " + " | ".join(_md(c) for c in row) + " |" for row in rows(results)],
        "",
        "## Items",
        "",
    ]
    for result in results:
        lines += [f"### {_number(result.key)}. {result.title}", ""]
        lines.append(f"- Target: {result.target}; {result.verdict}.")
        if result.skipped:
            lines.append(f"- Not run: {result.skipped}")
        lines += [f"- {detail}" for detail in result.details]
        if result.note:
            label = "Why missed, and what would fix it" if result.met is False else "Note"
            lines.append(f"- **{label}:** {result.note}")
        lines += [f"- Took {result.seconds:.0f} s.", ""]
    lines += ["## Method", "", METHOD]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
