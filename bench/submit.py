"""Item 2: submit throughput over REST (POST /orchestrate), local backend and gcp backend on the emulators.

``laxai serve`` runs as a subprocess with MAX_CONCURRENT_JOBS=1 and its one slot
held by a frozen job (``service.hold_dispatcher``), so every submitted job stays
queued and nothing trains; the dispatcher still runs and wakes for each message,
as in production. Closed-loop clients on keep-alive connections
(``bench.loadgen``) post tiny jobs; throughput is accepted jobs (202) per second
of wall time, median over repeats, with latency percentiles of all requests.
Afterwards the service is stopped and its state thrown away (nothing ever ran).
"""

from __future__ import annotations

import json
import shutil

from bench import loadgen
from bench.core import Context, Measure, Result, median, percentile, spread
from bench.items import new_result
from bench.service import HELD, TOKEN, Service, hold_dispatcher, job_body, kill_workers

TARGET_LOCAL = 200.0  # jobs/s


def _measure(ctx: Context, name: str, env: dict, total: int, concurrency: int, repeats: int) -> dict:
    home = ctx.scratch(f"submit-{name}")
    service = Service(home, **HELD, **env).start(timeout=120)
    try:
        with service.client() as client:
            hold_dispatcher(client)
        body = json.dumps(job_body(custom_name="bench-submit")).encode()
        raw = loadgen.request("POST", "/orchestrate", f"127.0.0.1:{service.port}", body, {
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        loadgen.run(service.port, lambda i: raw, total=min(50, total), concurrency=concurrency)  # warm-up
        runs = [loadgen.run(service.port, lambda i: raw, total=total, concurrency=concurrency)
                for _ in range(repeats)]
    finally:
        service.stop()
        kill_workers(home)
        shutil.rmtree(home, ignore_errors=True)
    latencies = [t * 1000 for run in runs for t in run.latencies]
    errors = sum(len(run.statuses) - run.ok for run in runs)
    return {"rates": [run.rate for run in runs], "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "errors": errors, "total": total, "concurrency": concurrency}


def run(ctx: Context) -> Result:
    result = new_result("submit")
    local = _measure(ctx, "local", {}, total=ctx.pick(60, 1000), concurrency=ctx.pick(8, 32),
                     repeats=ctx.pick(1, 3))
    result.measures.append(Measure("local", median(local["rates"]), "jobs/s", 0))
    result.met = median(local["rates"]) >= TARGET_LOCAL and local["errors"] == 0
    result.details.append(f"local (SQLite): {spread(local['rates'], 0)} jobs/s over {local['total']} jobs per "
                          f"repeat, {local['concurrency']} connections; latency p50 {local['p50']:.1f} ms, "
                          f"p99 {local['p99']:.1f} ms; non-2xx: {local['errors']}")
    try:
        from bench import emulators

        emulators.clear_firestore()
        gcp = _measure(ctx, "gcp", emulators.gcp_env(), total=ctx.pick(30, 300), concurrency=ctx.pick(8, 16),
                       repeats=ctx.pick(1, 3))
    except Exception as exc:  # noqa: BLE001 - an emulator that cannot start only loses this half
        result.measures.append(Measure("gcp", None))
        result.details.append(f"gcp (emulators): not measured: {type(exc).__name__}: {exc}"[:400])
    else:
        result.measures.append(Measure("gcp", median(gcp["rates"]), "jobs/s", 0))
        result.details.append(f"gcp (Firestore + Pub/Sub emulators): {spread(gcp['rates'], 0)} jobs/s over "
                              f"{gcp['total']} jobs per repeat, {gcp['concurrency']} connections; latency p50 "
                              f"{gcp['p50']:.1f} ms, p99 {gcp['p99']:.1f} ms; non-2xx: {gcp['errors']} "
                              "(no target: the emulators are single JVMs on the same 2 cores, not Firestore)")
    if result.met is False:
        result.note = (f"local median {median(local['rates']):.0f} jobs/s < {TARGET_LOCAL:.0f}"
                       + (f", {local['errors']} requests failed" if local["errors"] else ""))
    return result
