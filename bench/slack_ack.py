"""Item 1: how fast ``laxai serve`` acks signed ``/train`` slash commands over HTTP.

Slack gives an app 3 s to answer a slash command. Each request here is a real,
freshly signed ``/train epochs=1 imgsz=32 dataset=synthetic:8`` posted to
``/slack/events``; the app validates it, stores the job and answers with the
ephemeral "Queued" reply, so every request creates a job. The service runs with
MAX_CONCURRENT_JOBS=1 and that slot held by a frozen job (nothing trains); its
notifier posts the jobs' cards to the fake Slack meanwhile, as it would.

- 1 concurrent: requests one after another on one keep-alive connection.
- 50 concurrent: bursts of 50 requests sent at once, each on its own connection
  (50 people typing /train at the same moment), one burst a second.
- sustained (full run only, detail line): 50 connections kept busy, closed loop.

Latency is from the request's first byte out to the whole response in.
"""

from __future__ import annotations

import shutil
import time

from bench import loadgen
from bench.core import Context, Measure, Result, percentile
from bench.cpuload import busy_seconds, process_cpu
from bench.items import new_result
from bench.service import HELD, Service, hold_dispatcher, kill_workers
from bench.slack import close_senders, command_request, fake_slack, need_bot, slack_env

TARGET_P99_MS = 150.0
BUDGET_MS = 3000.0  # Slack's limit for the ack


def _check(load: loadgen.Load) -> int:
    """Requests that were not a 200 "Queued" answer."""
    return sum(1 for status, body in zip(load.statuses, load.bodies) if status != 200 or b"Queued" not in body)


def _stats(latencies: list[float]) -> dict[str, float]:
    ms = [t * 1000 for t in latencies]
    return {q: percentile(ms, float(q[1:])) for q in ("p50", "p95", "p99")}


def _slack_jobs(service: Service) -> int:
    """Jobs submitted from Slack in the service's store."""
    from orchestrator.stores.sqlite import SqliteJobStore

    store = SqliteJobStore(service.home / "laxai.db")
    try:
        return sum(1 for job in store.list(limit=100_000) if job.origin.source == "slack")
    finally:
        store.close()


def run(ctx: Context) -> Result:
    need_bot()
    result = new_result("slack")
    home = ctx.scratch("slack-ack")
    sequential, bursts, sustained = ctx.pick(20, 200), ctx.pick(2, 10), ctx.pick(0, 500)
    with fake_slack() as fake:
        service = Service(home, **HELD, **slack_env(fake)).start(timeout=120)
        try:
            with service.client() as client:
                hold_dispatcher(client)
            port = service.port
            loadgen.run(port, lambda i: command_request(port), total=10, concurrency=1, keep_bodies=True)  # warm-up
            one = loadgen.run(port, lambda i: command_request(port), total=sequential, concurrency=1,
                              keep_bodies=True)
            burst_loads = []
            machine, own = busy_seconds(), process_cpu(service.proc.pid)
            began = time.monotonic()
            for _ in range(bursts):
                burst_loads.append(loadgen.run(port, lambda i: command_request(port), total=50, concurrency=50,
                                               keep_bodies=True))
                time.sleep(1.0)
            elapsed = time.monotonic() - began
            machine = (busy_seconds() - machine) / elapsed if machine is not None else None
            own = (process_cpu(service.proc.pid) - own) / elapsed if own is not None else None
            closed = (loadgen.run(port, lambda i: command_request(port), total=sustained, concurrency=50,
                                  keep_bodies=True) if sustained else None)
            stored = _slack_jobs(service)
            posts = len(fake.calls_to("chat.postMessage"))
            limited = sum(1 for call in fake.calls if call.status == 429)
        finally:
            service.stop()
            kill_workers(home)
            close_senders()
            shutil.rmtree(home, ignore_errors=True)
    single = _stats(one.latencies)
    burst_latencies = [t for load in burst_loads for t in load.latencies]
    burst = _stats(burst_latencies)
    failed = _check(one) + sum(_check(load) for load in burst_loads)
    sent = 10 + len(one.latencies) + len(burst_latencies) + (len(closed.latencies) if closed else 0)
    result.measures += [
        Measure("1 conc. p99", single["p99"], "ms", 0),
        Measure("50 conc. p50", burst["p50"], "ms", 0),
        Measure("p99", burst["p99"], "ms", 0),
        Measure("of 3 s budget", 100 * burst["p99"] / BUDGET_MS, "%", 1),
    ]
    result.met = burst["p99"] <= TARGET_P99_MS and failed == 0 and stored == sent
    result.details += [
        f"1 concurrent ({len(one.latencies)} requests): p50 {single['p50']:.1f} ms, p95 {single['p95']:.1f} ms, "
        f"p99 {single['p99']:.1f} ms ({100 * single['p99'] / BUDGET_MS:.1f}% of Slack's 3 s)",
        f"50 concurrent ({bursts} bursts of 50 = {len(burst_latencies)} requests): p50 {burst['p50']:.1f} ms, "
        f"p95 {burst['p95']:.1f} ms, p99 {burst['p99']:.1f} ms ({100 * burst['p99'] / BUDGET_MS:.1f}% of "
        f"Slack's 3 s); slowest {1000 * max(burst_latencies):.0f} ms",
        f"requests not answered 200 \"Queued\": {failed}; Slack jobs in the store: {stored} for "
        f"{sent} requests sent (warm-up included)",
        (f"while the bursts ran (1 s apart), the machine was busy {machine:.2f} cores on average, the service "
         f"process {own:.2f} of them (the rest: this load generator, the fake Slack and other work)"
         if machine is not None and own is not None else "machine load not read"),
        f"meanwhile the notifier made {posts} chat.postMessage calls (cards of the queued jobs); "
        f"429s from the fake Slack: {limited}",
    ]
    result.details.append(
        "what set the tail of a 50-request burst (sampled with py-spy before the fix): about 85% of the ack "
        "handler's time went to waiting in BEGIN IMMEDIATE for SQLite's write lock (SqliteJobStore.create), as "
        "SQLite's busy handler sleeps in growing steps (up to 100 ms) instead of waking the next writer when the "
        "lock frees. Fixed in orchestrator/backends/sqlite_db.py: a process's writers now queue on a threading lock "
        "before BEGIN IMMEDIATE, leaving the busy timeout to cross-process waits; the burst p99 went from about "
        "200-300 ms to 120-150 ms. Since (py-spy --gil and the collector's own callbacks, 2026-11-30): the ack is "
        "CPU under the GIL (uvicorn/Starlette on the event loop, Bolt and our listener in its thread pool, beside "
        "the change feed, the notifier and the dispatcher), and a full garbage collection walking ~77k start-up "
        "objects (60-75 ms, twice a run) landed among the bursts; laxai serve now freezes its start-up heap "
        "(orchestrator/serve.py, settle_heap), which took the p99 from ~245 to ~200 ms")
    if closed is not None:
        sustained_stats = _stats(closed.latencies)
        result.details.append(
            f"sustained, 50 connections closed-loop ({sustained} requests; a stress figure, not the target): "
            f"{closed.rate:.0f} acks/s, p50 {sustained_stats['p50']:.0f} ms, p99 {sustained_stats['p99']:.0f} ms, "
            f"failed {_check(closed)}")
    if not result.met:
        why = []
        if burst["p99"] > TARGET_P99_MS:
            why.append(f"p99 {burst['p99']:.0f} ms at 50 concurrent (p50 {burst['p50']:.0f} ms; 1 at a time: p50 "
                       f"{single['p50']:.1f} ms): the 50th request waits for the CPU of the 49 before it under "
                       "one GIL; more than one service process would cut it")
        if failed or stored != sent:
            why.append(f"{failed} requests were not acked with \"Queued\"; {stored} jobs stored for {sent} sent")
        result.note = "; ".join(why)
    return result
