"""Item 9: final replies on gcp, 20 jobs in 4 channels: how soon after each job's end its reply lands.

A gcp-backend ``laxai serve`` (Firestore and Pub/Sub emulators) with Slack on,
against the fake Slack Web API (Slack's limits: ~1 post/s per channel, ~50
edits/min per workspace, HTTP 429 past them) and the notifier at its production
pacing. Twenty signed ``/train`` commands arrive, five in each of four channels.
The service's one slot is held by a frozen blocker job (``hold_dispatcher``), so
nothing trains: the bench moves the twenty jobs through start, half-way progress
and completion with the real transitions on its own Firestore store, at the
gcp write gap (1 s per job document), as their workers would. Once every card,
"started" and 50% reply is in Slack, all twenty complete at once (the hardest
moment for the pacer). Measured: seconds from each job's completed write to its
final reply in Slack (median, max), 429 answers, replies delivered. The notifier's
ledger lives in ``slack_threads``, so its writes never wait on a job document.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from datetime import timedelta

from bench.core import Context, Measure, Result, median
from bench.items import new_result
from bench.service import HELD, TOKEN, Service, hold_dispatcher, kill_workers

CHANNELS = ("C0BENCH1", "C0BENCH2", "C0BENCH3", "C0BENCH4")
TARGET_MEDIAN_S = 3.0
TINY = "epochs=2 imgsz=32 dataset=synthetic:8 arch=yolov8n"


def _wait(condition, timeout: float, what: str) -> None:  # noqa: ANN001 - a callable
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _all_posted(fake, tasks: list[str], key: str) -> bool:  # noqa: ANN001 - the fake Slack
    return all(fake.by_metadata(t, key) for t in tasks)


def _finish(store, job):  # noqa: ANN001, ANN202 - a JobStore, a Job
    """Complete ``job`` as its worker would; (job, unix time of the commit)."""
    from orchestrator.domain import transitions as t
    from orchestrator.domain.job import EndReason, Progress, utcnow
    from tests.slack.jobflow import ESTIMATE, RATES

    total = job.progress.total_epochs
    number = job.current_attempt.number
    final = Progress(epoch=total, total_epochs=total, progress_percent=100.0, message="Completed")
    done = store.update(job.task_id, lambda j: t.finish(
        j, number, EndReason.COMPLETED, utcnow() + timedelta(0), RATES, ESTIMATE,
        metrics={"mAP50": 0.5, "mAP50-95": 0.3}, progress=final), kind="status:completed")
    return done, time.time()


def _submit(slack, store, team: str, total: int) -> list[str]:  # noqa: ANN001 - a SlackSender, a JobStore
    """Send ``total`` signed /train commands round-robin over the channels; their task ids."""
    for i in range(total):
        sent = slack.command(TINY + f" name=bench-{i}", channel=CHANNELS[i % len(CHANNELS)], user=f"U0USER{i:02d}")
        if sent.status != 200:
            raise RuntimeError(f"/train answered {sent.status}: {sent.text[:300]}")

    def slack_jobs() -> list[str]:
        return [j.task_id for j in store.list(tenant_id=team, limit=1000) if j.origin.source == "slack"]

    _wait(lambda: len(slack_jobs()) >= total, 60, "the jobs")
    return slack_jobs()


def run(ctx: Context) -> Result:
    from google.cloud import firestore

    from bench import emulators
    from bench.slack import TEAM, close_senders, fake_slack, need_bot, sender, slack_env
    from orchestrator.stores.firestore import FirestoreJobStore
    from tests.slack import jobflow

    need_bot()
    result = new_result("threads")
    per_channel = ctx.pick(2, 5)
    emulators.clear_firestore()
    env = emulators.gcp_env()
    home = ctx.scratch("threads")
    with ExitStack() as stack:
        fake = stack.enter_context(fake_slack())
        stack.callback(close_senders)
        stack.callback(shutil.rmtree, home, True)
        stack.callback(kill_workers, home)
        service = Service(home, **env, **slack_env(fake), **{k: str(v) for k, v in HELD.items()},
                          LAXAI_API_TOKENS=f"{TOKEN}:{TEAM}")
        stack.enter_context(service)
        client = stack.enter_context(service.client())
        hold_dispatcher(client)  # the one slot is taken: nothing trains
        store = FirestoreJobStore(firestore.Client(project=emulators.PROJECT), env["FIRESTORE_COLLECTION"],
                                  close_client=True, write_gap=1.0)  # a worker's store: the gcp write gap
        stack.callback(store.close)
        total = per_channel * len(CHANNELS)
        tasks = _submit(sender(service.port), store, TEAM, total)
        _wait(lambda: _all_posted(fake, tasks, "card"), 120, "every card")
        running = [jobflow.progress(jobflow.start(store.get(t), store), store, epoch=1) for t in tasks]
        _wait(lambda: _all_posted(fake, tasks, "milestone:50"), 180, "every 50% reply")
        fake.calls.clear()
        ended = {}
        for job in running:  # every job ends now, as fast as the writes go
            done, ended[job.task_id] = _finish(store, job)
            if done is None or done.status.value != "completed":
                raise RuntimeError(f"completing {job.task_id} was refused")
        _wait(lambda: _all_posted(fake, tasks, "final"), 180, "every final reply")
        time.sleep(3.0)  # late 429s or duplicates would show by now
        calls = list(fake.calls)
        finals = {t: fake.by_metadata(t, "final") for t in tasks}
    delays = [finals[t][0]["posted_at"] - ended[t] for t in tasks]
    limited = [c for c in calls if c.status == 429]
    doubled = [t for t in tasks if len(finals[t]) != 1]
    result.measures += [
        Measure("final reply after job end, median", median(delays), "s", 1),
        Measure("max", max(delays), "s", 1),
        Measure("429s", len(limited), "", 0),
    ]
    result.met = median(delays) <= TARGET_MEDIAN_S and not limited and not doubled
    result.details += [
        f"{total} /train jobs, {per_channel} in each of {len(CHANNELS)} channels, gcp backend on the emulators; "
        "moved through start, 50% and completion by the bench at the gcp write gap (nothing trains)",
        "final reply after its job's completed write, s: " + ", ".join(f"{d:.1f}" for d in sorted(delays)),
        f"429 answers after the completions: {len(limited)}; final replies posted twice: {len(doubled)}",
        "notifier pacing at its defaults: SLACK_POST_INTERVAL 1.1 s per channel, SLACK_UPDATES_PER_MINUTE 45; "
        "fake Slack: 1 post/s per channel (burst 2), 50 updates/min (burst 5)",
    ]
    if not result.met:
        result.note = (f"median {median(delays):.1f} s (target {TARGET_MEDIAN_S:g} s), {len(limited)} x 429, "
                       f"{len(doubled)} finals not posted exactly once")
    return result
