"""The benchmark items, in the order of issue 6, and how to pick some (``--only``)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from bench.core import Result


@dataclass(frozen=True)
class Item:
    key: str  # what --only takes (the item's number works too)
    module: str  # bench.<module> has run(ctx) -> Result
    title: str
    target: str

    def runner(self) -> Callable:
        return importlib.import_module(f"bench.{self.module}").run


ITEMS = (
    Item("slack", "slack_ack", "Slack ack latency, signed /train over HTTP",
         "p99 <= 150 ms at 50 concurrent"),
    Item("submit", "submit", "Submit throughput, REST (POST /orchestrate)", "local >= 200 jobs/s"),
    Item("dispatch", "dispatch", "Dispatch latency: submit -> worker started -> first batch (local)",
         "<= 1 s plus interpreter start and imports"),
    Item("overhead", "overhead", "Worker overhead: system vs bare YOLO train(), same settings",
         "time ratio <= 1.03, RSS ratio <= 1.10"),
    Item("notify", "notify", "Notification budget: Slack Web API calls per job, 20 jobs in one channel",
         "0 x 429, every final reply delivered"),
    Item("store", "store_budget", "Store budget: Firestore writes per job-epoch (gcp backend, emulator)",
         "<= 1 write/s per document; with Slack <= 3.5 job-document writes per epoch"),
    Item("gpu", "gpu", "GPU worker overhead (bench/gpu_check.sh)",
         "time ratio <= 1.03, RSS ratio <= 1.10 on a GPU"),
    Item("fairshare", "fair_share", "Fair-share dispatch pass: 10 000 queued jobs, 50 tenants at their queued cap",
         "local <= 200 ms per pass, in fair-share order"),
    Item("threads", "slack_threads", "Final replies on gcp: 20 jobs in 4 channels, reply after each job's end",
         "median <= 3 s, 0 x 429"),
    Item("estimate", "estimate", "Estimate before launch vs billed: 4 runs of one configuration (local, CPU)",
         "run 4's time and cost estimates within +-25 %"),
)


def new_result(key: str) -> Result:
    """An empty Result with the item's title and target."""
    item = next(item for item in ITEMS if item.key == key)
    return Result(item.key, item.title, item.target)


def select(only: str | None) -> list[Item]:
    """All items, or those named (keys or numbers, comma-separated), in the standard order."""
    if not only:
        return list(ITEMS)
    wanted = {part.strip() for part in only.split(",") if part.strip()}
    known = {item.key for item in ITEMS} | {str(i) for i in range(1, len(ITEMS) + 1)}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"unknown item(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(item.key for item in ITEMS)} (or 1-{len(ITEMS)})")
    return [item for i, item in enumerate(ITEMS, 1) if item.key in wanted or str(i) in wanted]
