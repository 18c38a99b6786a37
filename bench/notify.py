"""Item 5: the notifier's Slack Web API budget with 20 jobs in one channel, against Slack's limits.

Twenty ``/train`` commands arrive at once in one channel (signed requests to a
local ``laxai serve``, MAX_CONCURRENT_JOBS and MAX_JOBS_PER_TENANT at their
defaults); each job trains for real, as small as possible (epochs 1, imgsz 32,
synthetic:8). The notifier posts each job's card, its thread replies and card
edits to the fake Slack Web API, which answers HTTP 429 past Slack's limits
(~1 post/s per channel, ~50 edits/min per workspace). The notifier runs with
its production pacing. Counted once every job finished, its final reply was
posted and Slack has been quiet for a few seconds: calls per job by method,
429s, and how long each final reply took after its job ended.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter

from bench import loadgen
from bench.core import Context, Measure, Result, median, percentile
from bench.items import new_result
from bench.service import Service, kill_workers
from bench.slack import CHANNEL, TEAM, close_senders, command_request, fake_slack, need_bot, slack_env

QUIET_SECONDS = 6.0  # no Web API call for this long: the notifier has caught up


def _final_of(fake, task_id: str):  # noqa: ANN001, ANN202 - the fake, a message or None
    found = fake.by_metadata(task_id, "final")
    return found[0] if found else None


def run(ctx: Context) -> Result:
    from orchestrator.stores.sqlite import SqliteJobStore

    need_bot()
    result = new_result("notify")
    jobs = ctx.pick(3, 20)
    home = ctx.scratch("notify")
    with fake_slack() as fake:
        service = Service(home, YOLO_DEVICE="cpu", **slack_env(fake)).start(timeout=120)
        store = SqliteJobStore(service.home / "laxai.db")
        try:
            port = service.port
            sent = loadgen.run(port, lambda i: command_request(port, user=f"U0USER{i:02d}"), total=jobs,
                               concurrency=jobs, keep_bodies=True)
            acked = sum(1 for s, b in zip(sent.statuses, sent.bodies) if s == 200 and b"Queued" in b)
            started = time.monotonic()
            deadline = started + ctx.pick(600, 1800)
            tasks: list[str] = []
            while time.monotonic() < deadline:
                mine = [j for j in store.list(tenant_id=TEAM, limit=1000) if j.origin.channel == CHANNEL]
                tasks = [j.task_id for j in mine]
                if len(mine) >= acked and all(j.status.is_terminal() for j in mine) \
                        and all(_final_of(fake, t) for t in tasks):
                    break
                time.sleep(1.0)
            last_call = time.monotonic()
            seen = len(fake.calls)
            while time.monotonic() - last_call < QUIET_SECONDS and time.monotonic() < deadline + 60:
                time.sleep(0.5)
                if len(fake.calls) != seen:
                    seen, last_call = len(fake.calls), time.monotonic()
            finished = {t: store.get(t) for t in tasks}
            calls = list(fake.calls)
        finally:
            service.stop()
            store.close()
            kill_workers(home)
            close_senders()
            shutil.rmtree(home, ignore_errors=True)
        finals = {t: _final_of(fake, t) for t in tasks}
    by_method = Counter(c.method for c in calls if c.method != "auth.test")
    limited = [c for c in calls if c.status == 429]
    per_job = sum(by_method.values()) / max(1, len(tasks))
    delivered = sum(1 for m in finals.values() if m)
    completed = sum(1 for j in finished.values() if j.status.value == "completed")
    delays = [m["posted_at"] - finished[t].finished_at.timestamp()
              for t, m in finals.items() if m and finished[t].finished_at]
    result.measures += [
        Measure("calls/job", per_job, "", 1),
        Measure("429s", len(limited), "", 0),
        Measure("final replies", delivered, f"of {len(tasks)}", 0),
    ]
    result.met = not limited and delivered == len(tasks) == jobs and acked == jobs
    result.details += [
        f"{jobs} /train commands at once in one channel, acked \"Queued\": {acked}; jobs completed: {completed}",
        "Web API calls per job by method: " + ", ".join(f"{m} {n / max(1, len(tasks)):.1f}"
                                                       for m, n in by_method.most_common()),
        f"429 answers: {len(limited)}" + (f" ({', '.join(sorted({c.method for c in limited}))})" if limited else ""),
        (f"final reply after its job ended: median {median(delays):.1f} s, max {max(delays):.1f} s "
         f"(p90 {percentile(delays, 90):.1f} s): posts in one channel are paced at ~1 per 1.1 s")
        if delays else "no final reply delivered",
        "notifier pacing at its defaults: SLACK_POST_INTERVAL 1.1 s, SLACK_UPDATES_PER_MINUTE 45, "
        "SLACK_CARD_MIN_INTERVAL 3 s; fake Slack: 1 post/s per channel (burst 2), 50 updates/min (burst 5)",
    ]
    if not result.met:
        why = []
        if limited:
            why.append(f"{len(limited)} calls got 429 ({', '.join(sorted({c.method for c in limited}))}): the "
                       "notifier's pacing let them past the limit")
        if delivered != len(tasks) or len(tasks) != jobs:
            why.append(f"{delivered} final replies for {len(tasks)} jobs ({jobs} commands)")
        if acked != jobs:
            why.append(f"only {acked} of {jobs} commands were acked")
        result.note = "; ".join(why)
    return result
