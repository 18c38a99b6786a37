"""JobStore contract: the same behaviour from SQLite (local) and Firestore (gcp)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, request_cancel, set_notify
from tests.contract.support import BASE_TIME, Recorder, make_job, wait_until
from tests.support import write_times


def increment(job):
    return set_notify(job, {"n": job.notify.get("n", 0) + 1})


def run_threads(count: int, target) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)


# -- create / get -------------------------------------------------------------


def test_create_then_get_returns_the_stored_job(store):
    job = make_job(channel="C1")
    stored, created = store.create(job)
    assert created
    assert stored.version == 1
    assert stored.task_id == job.task_id
    assert store.get(job.task_id) == stored
    assert store.get("no-such-task") is None
    assert store.get("../a/b") is None  # ids from URLs never become paths
    assert store.update("../a/b", lambda j: j) is None


def test_create_of_an_existing_task_id_returns_it_unchanged(store):
    first, _ = store.create(make_job())
    again, created = store.create(first.model_copy(update={"metrics": {"x": 1.0}}))
    assert not created
    assert again == first


def test_idempotency_key_returns_the_first_job_of_the_tenant(store):
    first, created = store.create(make_job("team-a", key="req-1"))
    again, created_again = store.create(make_job("team-a", key="req-1"))
    other_tenant, other_created = store.create(make_job("team-b", key="req-1"))
    assert created and not created_again and other_created
    assert again == first
    assert other_tenant.task_id != first.task_id
    assert {j.task_id for j in store.list(limit=10)} == {first.task_id, other_tenant.task_id}


def test_jobs_without_a_key_are_always_new(store):
    results = [store.create(make_job())[1] for _ in range(2)]
    assert results == [True, True]
    assert len(store.list()) == 2


def test_concurrent_creates_with_one_key_store_one_job(open_store):
    stores = [open_store(), open_store()]  # two processes, each with two threads
    outcomes = []

    def submit(i):
        outcomes.append(stores[i % 2].create(make_job("team-a", key="same-request")))

    run_threads(4, submit)
    assert sum(created for _, created in outcomes) == 1
    assert len({job.task_id for job, _ in outcomes}) == 1
    assert len(stores[0].list()) == 1


class CommitTimes:
    """Each commit time of one job's writes, as the database itself stamps it, whoever wrote.

    SQLite: a trigger in each write's transaction (tests/support/write_times.py, SQLite's clock).
    Firestore: every write's transaction reads the document's ``update_time`` (the emulator's
    commit time of the write before it) and hands it to the budget check, which this spies on;
    the last write's comes from the document itself."""

    def __init__(self, backend: str, stores: list, db_path):
        self.backend, self.stores, self.db_path, self.seen = backend, stores, db_path, set()
        if backend == "local":
            write_times.install(db_path)
        else:
            for store in stores:
                store.budget = _SpiedBudget(store.budget, self.seen)

    def of(self, task_id: str, kind: str) -> list[float]:
        if self.backend == "local":
            return [at for k, at in write_times.writes(self.db_path, task_id) if k == kind]
        from orchestrator.stores.firestore import doc_id

        last = self.stores[0]._jobs.document(doc_id(task_id)).get().update_time.timestamp()
        return sorted(self.seen | {last})[1:]  # without the create's


class _SpiedBudget:
    def __init__(self, budget, seen: set):
        self._budget, self._seen = budget, seen

    def check(self, last_write, committed_at, waited_for, now=None):
        if committed_at is not None:
            self._seen.add(committed_at)
        return self._budget.check(last_write, committed_at, waited_for, now)

    def __getattr__(self, name):
        return getattr(self._budget, name)


def test_writes_to_one_job_keep_the_write_gap_across_store_instances(open_store, backend, tmp_path):
    """Two instances (two processes) writing one job, from four threads: every update lands, and
    each commit is at least the gap after the one before it (checked write by write)."""
    gap = 0.3
    stores = [open_store(write_gap=gap), open_store(write_gap=gap)]
    job, _ = stores[0].create(make_job())
    commits = CommitTimes(backend, stores, tmp_path / "laxai.db")
    writes = 8
    began = time.monotonic()

    def bump(i):
        for _ in range(writes // 4):
            assert stores[i % 2].update(job.task_id, increment, kind="notify") is not None

    run_threads(4, bump)
    took = time.monotonic() - began
    final = stores[1].get(job.task_id)
    assert final.notify["n"] == writes and final.version == 1 + writes
    assert took >= writes * gap * 0.95, f"{writes} writes took {took:.2f} s with a {gap} s gap"
    stamped = commits.of(job.task_id, "notify")
    assert len(stamped) == writes, stamped
    between = [round(b - a, 4) for a, b in zip(stamped, stamped[1:])]
    assert all(g >= gap - 0.002 for g in between), between  # 2 ms: SQLite's clock has 1 ms steps
    # A mutation that declines writes nothing, so it does not wait for the gap.
    stores[0].update(job.task_id, increment)
    began = time.monotonic()
    assert stores[1].update(job.task_id, lambda j: None) is None
    assert time.monotonic() - began < gap / 2


def test_a_clock_behind_the_last_writers_waits_one_gap_not_the_skew(open_store, monkeypatch):
    """A writer whose clock is 5 s behind (the other instance's, or Firestore's commit time)
    waits one gap for the write it saw, then goes ahead: it is not held for the skew."""
    import sys
    import types

    gap = 0.3
    store = open_store(write_gap=gap)
    job, _ = store.create(make_job())
    store.update(job.task_id, increment)
    behind = types.SimpleNamespace(time=lambda: time.time() - 5.0, sleep=time.sleep)
    monkeypatch.setattr(sys.modules[type(store).__module__], "time", behind)
    began = time.monotonic()
    assert store.update(job.task_id, increment) is not None
    took = time.monotonic() - began
    assert gap * 0.9 <= took < 3 * gap, took


def test_without_a_write_gap_updates_do_not_wait(store):
    job, _ = store.create(make_job())
    began = time.monotonic()
    for _ in range(5):
        store.update(job.task_id, increment)
    assert store.get(job.task_id).notify["n"] == 5
    assert time.monotonic() - began < 5 * 0.3  # what the gap test above needs at the least


# -- queries ------------------------------------------------------------------


def test_list_is_newest_first_with_filters(store):
    a_old = store.create(make_job("team-a", channel="C1", age=30))[0]
    b = store.create(make_job("team-b", channel="C1", age=20))[0]
    a_mid = store.create(make_job("team-a", channel="C2", age=10))[0]
    a_new = store.create(make_job("team-a", channel="C1", age=0))[0]
    store.update(a_mid.task_id, lambda j: claim(j, BASE_TIME, 600))

    ids = lambda jobs: [j.task_id for j in jobs]  # noqa: E731
    assert ids(store.list()) == [a_new.task_id, a_mid.task_id, b.task_id, a_old.task_id]
    assert ids(store.list(tenant_id="team-a")) == [a_new.task_id, a_mid.task_id, a_old.task_id]
    assert ids(store.list(tenant_id="team-a", limit=2)) == [a_new.task_id, a_mid.task_id]
    assert ids(store.list(channel="C1")) == [a_new.task_id, b.task_id, a_old.task_id]
    assert ids(store.list(tenant_id="team-a", channel="C1")) == [a_new.task_id, a_old.task_id]
    assert ids(store.list(statuses=[JobStatus.RUNNING])) == [a_mid.task_id]
    assert ids(store.list(tenant_id="team-a", statuses=[JobStatus.QUEUED])) == [a_new.task_id, a_old.task_id]
    assert ids(store.list(statuses=[JobStatus.QUEUED, JobStatus.RUNNING], channel="C2")) == [a_mid.task_id]
    assert store.list(tenant_id="team-c") == []
    assert store.list(statuses=[]) == []


def test_queued_is_highest_priority_first_then_oldest(store):
    low_old = store.create(make_job(priority=0, age=50))[0]
    high_new = store.create(make_job(priority=5, age=1))[0]
    low_new = store.create(make_job(priority=0, age=2))[0]
    high_old = store.create(make_job(priority=5, age=40))[0]
    mid = store.create(make_job(priority=3, age=100))[0]
    running = store.create(make_job(priority=9, age=500))[0]
    store.update(running.task_id, lambda j: claim(j, BASE_TIME, 600))

    order = [j.task_id for j in store.queued()]
    assert order == [high_old.task_id, high_new.task_id, mid.task_id, low_old.task_id, low_new.task_id]
    assert [j.task_id for j in store.queued(limit=2)] == [high_old.task_id, high_new.task_id]


def test_queued_by_tenant_gives_each_tenants_next_jobs_in_dispatch_order(store):
    a_low = store.create(make_job("team-a", priority=0, age=90))[0]
    a_high_new = store.create(make_job("team-a", priority=7, age=10))[0]
    a_high_old = store.create(make_job("team-a", priority=7, age=20))[0]
    b_only = store.create(make_job("team-b", priority=1, age=5))[0]
    c_running = store.create(make_job("team-c", priority=9, age=50))[0]
    store.update(c_running.task_id, lambda j: claim(j, BASE_TIME, 600))
    d_cancelled = store.create(make_job("team-d", priority=9, age=50))[0]
    store.update(d_cancelled.task_id, lambda j: request_cancel(j, "ann", BASE_TIME))

    def ids(found):
        return {tenant: [j.task_id for j in jobs] for tenant, jobs in found.items()}

    assert ids(store.queued_by_tenant(2)) == {"team-a": [a_high_old.task_id, a_high_new.task_id],
                                              "team-b": [b_only.task_id]}
    assert ids(store.queued_by_tenant(5)) == {"team-a": [a_high_old.task_id, a_high_new.task_id, a_low.task_id],
                                              "team-b": [b_only.task_id]}
    assert ids(store.queued_by_tenant(1, skip={"team-a"})) == {"team-b": [b_only.task_id]}
    assert ids(store.queued_by_tenant(1, skip=["team-b", "team-x"])) == {"team-a": [a_high_old.task_id]}


def test_a_large_backlog_of_one_tenant_never_hides_another_tenants_queued_job(store):
    # Tenant ids sort on both sides of the flood's, so neither end of its backlog hides a tenant.
    before = store.create(make_job("team-0", priority=0, age=1))[0]
    for i in range(30):
        store.create(make_job("team-m", priority=9, age=100 + i))
    after = store.create(make_job("team-z", priority=0, age=1))[0]
    found = store.queued_by_tenant(1)
    assert sorted(found) == ["team-0", "team-m", "team-z"]
    assert [j.task_id for j in found["team-0"]] == [before.task_id]
    assert [j.task_id for j in found["team-z"]] == [after.task_id]
    assert found["team-m"][0].created_at == BASE_TIME - timedelta(seconds=129)  # its oldest
    assert set(store.queued_by_tenant(3, skip={"team-m"})) == {"team-0", "team-z"}


def test_count_queued_counts_one_tenants_queued_jobs_only(store):
    mine = [store.create(make_job("team-a", age=i))[0] for i in range(3)]
    store.create(make_job("team-b"))
    store.update(mine[0].task_id, lambda j: claim(j, BASE_TIME, 600))
    assert store.count_queued("team-a") == 2
    assert store.count_queued("team-b") == 1
    assert store.count_queued("team-none") == 0
    assert store.count_queued("team-a", at_most=1) == 1


def test_queued_by_tenant_over_many_tenants_with_short_queues(store):
    # More jobs than one page of a paged backend, with tenants of 1 to 4 jobs cut at any place.
    made = {}
    for i in range(16):
        tenant = f"team-{i:02d}"
        made[tenant] = [store.create(make_job(tenant, priority=(i + k) % 3, age=100 - k))[0] for k in range(i % 4 + 1)]
    expected = {t: [j.task_id for j in sorted(jobs, key=lambda j: (-j.priority, j.created_at))][:3]
                for t, jobs in made.items()}
    found = store.queued_by_tenant(3)
    assert {t: [j.task_id for j in jobs] for t, jobs in found.items()} == expected
    assert sorted(store.queued_by_tenant(1, skip={"team-03", "team-07"})) == sorted(set(made) - {"team-03", "team-07"})


def test_by_idempotency_key_finds_the_tenants_own_job(store):
    first = store.create(make_job("team-a", key="req-1"))[0]
    store.create(make_job("team-b", key="req-2"))
    assert store.by_idempotency_key("team-a", "req-1").task_id == first.task_id
    assert store.by_idempotency_key("team-b", "req-1") is None
    assert store.by_idempotency_key("team-a", "req-2") is None


def test_active_is_running_and_cancelling(store):
    queued = store.create(make_job())[0]
    running = store.create(make_job())[0]
    cancelling = store.create(make_job())[0]
    cancelled = store.create(make_job())[0]
    for job in (running, cancelling):
        store.update(job.task_id, lambda j: claim(j, BASE_TIME, 600))
    store.update(cancelling.task_id, lambda j: request_cancel(j, "ann", BASE_TIME))
    store.update(cancelled.task_id, lambda j: request_cancel(j, "ann", BASE_TIME))

    assert {j.task_id for j in store.active()} == {running.task_id, cancelling.task_id}
    assert {j.status for j in store.active()} == {JobStatus.RUNNING, JobStatus.CANCELLING}
    assert [j.task_id for j in store.queued()] == [queued.task_id]


def finished(tenant: str = "team-a", *, arch: str = "yolo11n", size: int = 640, dataset: str = "synthetic",
             age: float = 0.0, status: JobStatus = JobStatus.COMPLETED, images: int | None = None):
    """A finished job of this shape and dataset, ``age`` seconds older than BASE_TIME."""
    job = make_job(tenant, age=age)
    spec = job.spec.model_copy(update={
        "dataset": dataset, "model_params": job.spec.model_params.model_copy(update={"architecture": arch,
                                                                                      "input_size": size})})
    return job.model_copy(update={"spec": spec, "status": status, "dataset_images": images})


def test_completed_like_is_completed_jobs_of_one_shape_any_tenant_newest_first(store):
    old = store.create(finished("team-a", age=30))[0]
    new = store.create(finished("team-b", age=10))[0]
    store.create(finished(arch="yolov8n", age=5))
    store.create(finished(size=320, age=5))
    store.create(finished(status=JobStatus.FAILED, age=5))
    store.create(make_job(age=1))  # queued, same shape

    assert [j.task_id for j in store.completed_like("yolo11n", 640)] == [new.task_id, old.task_id]
    assert [j.task_id for j in store.completed_like("yolo11n", 640, limit=1)] == [new.task_id]
    assert store.completed_like("yolo11s", 640) == []


def test_completed_on_is_the_tenants_completed_jobs_on_one_dataset_newest_first(store):
    old = store.create(finished("team-a", dataset="data/a.yaml", images=10, age=30))[0]
    new = store.create(finished("team-a", dataset="data/a.yaml", images=12, age=10, arch="yolov8n"))[0]
    store.create(finished("team-b", dataset="data/a.yaml", images=99, age=5))  # another tenant's a.yaml
    store.create(finished("team-a", dataset="data/b.yaml", age=5))
    store.create(finished("team-a", dataset="data/a.yaml", status=JobStatus.CANCELLED, age=5))

    found = store.completed_on("team-a", "data/a.yaml")
    assert [j.task_id for j in found] == [new.task_id, old.task_id]
    assert [j.dataset_images for j in found] == [12, 10]
    assert [j.task_id for j in store.completed_on("team-a", "data/a.yaml", limit=1)] == [new.task_id]
    assert store.completed_on("team-c", "data/a.yaml") == []


# -- update (compare-and-set) -------------------------------------------------


def test_update_bumps_the_version_and_persists(store):
    job = store.create(make_job())[0]
    changed = store.update(job.task_id, lambda j: claim(j, BASE_TIME, 600), kind="status:running")
    assert changed is not None
    assert changed.version == 2
    assert changed.status is JobStatus.RUNNING
    assert store.get(job.task_id) == changed
    assert store.update(job.task_id, increment).version == 3


def test_declined_update_returns_none_and_writes_nothing(store):
    job = store.create(make_job())[0]
    assert store.update(job.task_id, lambda j: None) is None
    assert store.update(job.task_id, lambda j: j) is None  # an equal job is no change
    assert store.update(job.task_id, lambda j: set_notify(j, {})) is None
    assert store.get(job.task_id) == job
    calls = []
    assert store.update("no-such-task", lambda j: calls.append(j) or j) is None
    assert calls == []


def test_concurrent_updates_from_threads_never_lose_one(store):
    job = store.create(make_job())[0]

    def work(_):
        for _ in range(10):
            assert store.update(job.task_id, increment, kind="count") is not None

    run_threads(4, work)
    final = store.get(job.task_id)
    assert final.notify["n"] == 40
    assert final.version == 41


def test_concurrent_updates_from_separate_stores_never_lose_one(open_store):
    """Two stores, as two processes would hold: contention reaches the backend itself."""
    stores = [open_store(), open_store()]
    job = stores[0].create(make_job())[0]

    def work(i):
        for _ in range(2):
            stores[i].update(job.task_id, increment)

    run_threads(2, work)
    final = stores[1].get(job.task_id)
    assert final.notify["n"] == 4
    assert final.version == 5


# -- change feed --------------------------------------------------------------


def test_watch_delivers_each_jobs_changes_in_version_order(store):
    recorder = Recorder()
    watch = store.watch(recorder)
    try:
        a = store.create(make_job())[0]
        b = store.create(make_job())[0]
        kinds = {(a.task_id, 1): "created", (b.task_id, 1): "created"}
        for round_ in range(4):
            for job in (a, b):
                changed = store.update(job.task_id, increment, kind=f"count:{round_}")
                kinds[(job.task_id, changed.version)] = f"count:{round_}"
                assert store.update(job.task_id, lambda j: None, kind="declined") is None
        assert wait_until(lambda: recorder.saw(a.task_id, 5) and recorder.saw(b.task_id, 5))
        time.sleep(0.3)  # anything late would show up now
    finally:
        watch.stop()

    for job in (a, b):
        versions = recorder.versions(job.task_id)
        assert versions == sorted(set(versions)), versions  # increasing, no repeats
        assert versions[-1] == 5
        for event in recorder.of(job.task_id):  # each event is the job as it was stored, with its kind
            assert kinds[(job.task_id, event.job.version)] == event.kind
            assert event.job.notify.get("n", 0) == event.job.version - 1
    assert all(e.kind != "declined" for e in recorder.events)


def test_watch_starts_from_now_when_no_cursor_is_given(store):
    before = store.create(make_job())[0]
    recorder = Recorder()
    watch = store.watch(recorder)
    try:
        after = store.create(make_job())[0]
        assert wait_until(lambda: recorder.saw(after.task_id, 1))
        time.sleep(0.3)
    finally:
        watch.stop()
    assert recorder.of(before.task_id) == []


def test_failing_callback_never_stops_the_feed(store):
    recorder = Recorder(fail_on=lambda event: True)
    watch = store.watch(recorder)
    try:
        job = store.create(make_job())[0]
        assert wait_until(lambda: recorder.saw(job.task_id, 1))
        store.update(job.task_id, increment)
        assert wait_until(lambda: recorder.saw(job.task_id, 2))
        other = store.create(make_job())[0]
        assert wait_until(lambda: recorder.saw(other.task_id, 1))
    finally:
        watch.stop()


def test_watch_resumes_after_a_cursor(store):
    first = Recorder()
    watch = store.watch(first)
    try:
        a = store.create(make_job())[0]
        b = store.create(make_job())[0]
        assert wait_until(lambda: first.saw(a.task_id, 1) and first.saw(b.task_id, 1))
    finally:
        watch.stop()
    cursor = max((e.cursor for e in first.events))  # b's creation, the newest change seen
    store.update(a.task_id, increment, kind="after-cursor")

    resumed = Recorder()
    watch = store.watch(resumed, since=cursor)
    try:
        assert wait_until(lambda: resumed.saw(a.task_id, 2))
        time.sleep(0.3)
    finally:
        watch.stop()
    assert resumed.of(b.task_id) == []
    assert [e.kind for e in resumed.of(a.task_id)] == ["after-cursor"]
    assert all(e.cursor > cursor for e in resumed.events)


def test_stopped_watch_delivers_nothing_more(store):
    recorder = Recorder()
    watch = store.watch(recorder)
    job = store.create(make_job())[0]
    assert wait_until(lambda: recorder.saw(job.task_id, 1))
    watch.stop()
    store.update(job.task_id, increment)
    time.sleep(0.5)
    assert recorder.versions(job.task_id) == [1]


# -- locks --------------------------------------------------------------------


def test_locks_are_exclusive_until_they_expire(store):
    now = BASE_TIME
    assert store.try_lock("dispatcher", "svc-1", 10, now)
    assert not store.try_lock("dispatcher", "svc-2", 10, now + timedelta(seconds=5))
    assert store.try_lock("dispatcher", "svc-1", 10, now + timedelta(seconds=5))  # the owner renews
    assert not store.try_lock("dispatcher", "svc-2", 10, now + timedelta(seconds=14))  # renewed until 15
    assert store.try_lock("other-lock", "svc-2", 10, now)  # locks are independent
    assert store.try_lock("dispatcher", "svc-2", 10, now + timedelta(seconds=16))  # expired: taken over
    assert not store.try_lock("dispatcher", "svc-1", 10, now + timedelta(seconds=17))


def test_the_owner_renews_only_once_half_the_lease_is_left(store):
    now = BASE_TIME
    assert store.try_lock("dispatcher", "svc-1", 10, now)  # held until 10
    assert store.try_lock("dispatcher", "svc-1", 10, now + timedelta(seconds=3))  # 7 left: no write
    assert store.try_lock("dispatcher", "svc-2", 10, now + timedelta(seconds=11))  # so it still ended at 10
    assert not store.try_lock("dispatcher", "svc-1", 10, now + timedelta(seconds=12))
    assert store.try_lock("dispatcher", "svc-2", 10, now + timedelta(seconds=17))  # 4 left: renewed until 27
    assert not store.try_lock("dispatcher", "svc-1", 10, now + timedelta(seconds=26))


def test_release_frees_the_lock_only_for_its_owner(store):
    now = BASE_TIME
    assert store.try_lock("dispatcher", "svc-1", 60, now)
    store.release_lock("dispatcher", "svc-2")  # not the owner: no effect
    assert not store.try_lock("dispatcher", "svc-2", 60, now)
    store.release_lock("dispatcher", "svc-1")
    assert store.try_lock("dispatcher", "svc-2", 60, now)
