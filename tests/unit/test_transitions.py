"""The transition table: every (from, to) pair is reachable exactly when ALLOWED_TRANSITIONS allows it.

Pure domain tests. Each status gets representative jobs (e.g. a running job before
and after its worker started); every transition function, with every end reason,
is applied to each, and the statuses they reach are compared with the table.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.domain.cost import rates_for
from orchestrator.domain.job import BudgetCrossing, EndReason, Job, JobError, Progress
from orchestrator.domain.oom import after_out_of_memory
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import (
    ALLOWED_TRANSITIONS,
    INITIAL_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    can_transition,
)
from orchestrator.domain.transitions import (
    OUTCOME_STATUS,
    approve,
    claim,
    fail_queued,
    finish,
    heartbeat,
    hold_for_approval,
    record_execution,
    reject,
    report_progress,
    request_cancel,
    requeue,
    set_notify,
    worker_started,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RATES = rates_for("nvidia-l4", 1, "4000m", "16Gi")
S = JobStatus

# The table as the product defines it, written out so a change to it is deliberate.
EXPECTED = {
    S.AWAITING_APPROVAL: {S.QUEUED, S.CANCELLED},
    S.QUEUED: {S.RUNNING, S.CANCELLED, S.FAILED},
    S.RUNNING: {S.QUEUED, S.CANCELLING, S.COMPLETED, S.FAILED},
    S.CANCELLING: {S.CANCELLED, S.COMPLETED, S.FAILED},
    S.COMPLETED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}


# A budget the held sample would cross.
OVER = BudgetCrossing(scope="channel", key="C0123", limit_usd=50, period="month", spent_usd=48.2, estimate_usd=3.1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fresh() -> Job:
    return Job(tenant_id="team-a", spec=JobSpec(tenant_id="team-a"), created_at=T0, updated_at=T0,
               progress=Progress(total_epochs=10))


def samples() -> dict[JobStatus, list[Job]]:
    """Representative jobs per status, built with the transitions themselves."""
    queued = fresh()
    claimed = claim(queued, at(1), 600)
    started = worker_started(record_execution(claimed, 1, "exec-1", at(2)), 1, at(3), 60, "cpu", 0)
    requeued = requeue(started, 1, EndReason.INTERRUPTED, at(10), RATES, 3)
    reclaimed = claim(requeued, at(11), 600)
    cancelling = request_cancel(started, "ann", at(20))
    cancelling_unstarted = request_cancel(claimed, "ann", at(5))
    completed = finish(started, 1, EndReason.COMPLETED, at(30), RATES)
    failed = finish(started, 1, EndReason.FAILED, at(30), RATES, error=JobError(reason="training_error", message="x"))
    cancelled = request_cancel(queued, "ann", at(2))
    held = hold_for_approval(fresh(), [OVER], at(0))
    approved = approve(held, "boss", at(1))
    return {
        S.AWAITING_APPROVAL: [held],
        S.QUEUED: [queued, requeued, approved],
        S.RUNNING: [claimed, started, reclaimed],
        S.CANCELLING: [cancelling, cancelling_unstarted],
        S.COMPLETED: [completed],
        S.FAILED: [failed],
        S.CANCELLED: [cancelled, reject(held, "boss", at(1), "too dear"), request_cancel(held, "ann", at(1))],
    }


def every_transition(job: Job) -> list[tuple[str, Job | None]]:
    """(what, result) for every transition function and argument variant, by the current attempt."""
    attempt = job.current_attempt.number if job.current_attempt else 1
    now = at(100)
    results = [
        ("claim", claim(job, now, 600)),
        ("record_execution", record_execution(job, attempt, "exec-x", now)),
        ("worker_started", worker_started(job, attempt, now, 60, "cpu", 0)),
        ("heartbeat", heartbeat(job, attempt, now, 60)),
        ("report_progress", report_progress(job, attempt, Progress(epoch=2, total_epochs=10), {"m": 1.0}, now)),
        ("request_cancel", request_cancel(job, "bob", now)),
        ("fail_queued", fail_queued(job, JobError(reason="dataset_error", message="gone"), now)),
        ("set_notify", set_notify(job, {"card_ts": "1.2"})),
        ("approve", approve(job, "boss", now)),
        ("reject", reject(job, "boss", now, "too dear")),
    ]
    for reason in EndReason:
        try:
            results.append((f"finish:{reason.value}", finish(job, attempt, reason, now, RATES)))
        except KeyError:  # finish takes outcomes only (completed, failed, timeout, cancelled)
            pass
        # "limit": one more lost execution is one too many; "room": it is not.
        for label, max_recoveries in (("limit", job.recoveries), ("room", job.recoveries + 3)):
            results.append((f"requeue:{reason.value}:{label}",
                            requeue(job, attempt, reason, now, RATES, max_recoveries)))
    # "tries": this failed launch is the last one MAX_LAUNCH_ATTEMPTS allows.
    results.append(("requeue:launch_failed:tries", requeue(job, attempt, EndReason.LAUNCH_FAILED, now, RATES,
                                                           job.recoveries + 3, max_launch_attempts=1)))
    # Out of memory (orchestrator/domain/oom.py): "retry" with half the batch, or "spent" (OOM_RETRIES=0).
    for label, retries in (("retry", 2), ("spent", 0)):
        results.append((f"out_of_memory:{label}", after_out_of_memory(job, attempt, now, RATES, retries,
                                                                      job.recoveries, detail="CUDA out of memory")))
    return results


def reached(source: JobStatus) -> dict[JobStatus, list[str]]:
    """Target status -> the transitions that moved a ``source`` job there."""
    found: dict[JobStatus, list[str]] = {}
    for job in samples()[source]:
        assert job is not None and job.status is source
        for what, result in every_transition(job):
            if result is not None and result.status is not source:
                found.setdefault(result.status, []).append(what)
    return found


def test_the_table_is_the_expected_one():
    assert {k: set(v) for k, v in ALLOWED_TRANSITIONS.items()} == EXPECTED
    assert set(ALLOWED_TRANSITIONS) == set(JobStatus)
    assert TERMINAL_STATUSES == {s for s, targets in EXPECTED.items() if not targets}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(JobStatus, JobStatus)),
                         ids=lambda s: s.value)
def test_every_pair(source, target):
    allowed = target in EXPECTED[source]
    assert can_transition(source, target) is allowed
    moved_by = reached(source).get(target, [])
    if allowed:
        assert moved_by, f"no transition moves a {source.value} job to {target.value}"
    else:
        assert not moved_by, f"{moved_by} moved a {source.value} job to {target.value}, which is not allowed"


@pytest.mark.parametrize("source", sorted(TERMINAL_STATUSES, key=lambda s: s.value), ids=lambda s: s.value)
def test_finished_jobs_only_take_front_end_state(source):
    for job in samples()[source]:
        changed = {what for what, result in every_transition(job) if result is not None}
        assert changed == {"set_notify"}


def test_the_attempt_number_fences_writes():
    started = samples()[S.RUNNING][1]
    now = at(50)
    for attempt in (0, 2):
        assert record_execution(started, attempt, "x", now) is None
        assert heartbeat(started, attempt, now, 60) is None
        assert report_progress(started, attempt, Progress(), None, now) is None
        assert finish(started, attempt, EndReason.COMPLETED, now, RATES) is None
        assert requeue(started, attempt, EndReason.INTERRUPTED, now, RATES, 3) is None
    assert heartbeat(started, 1, now, 60) is not None


def test_what_each_move_is_made_by():
    """The named paths of the table (a regression guard on who may do what)."""
    resuming = [r.value for r in EndReason if r.resumes]
    losses = {f"requeue:{r.value}:limit" for r in EndReason if r.counts_as_recovery}
    unbounded = {f"requeue:{r.value}:limit" for r in EndReason if r.resumes and not r.counts_as_recovery}
    failures = {f"finish:{r.value}" for r, status in OUTCOME_STATUS.items() if status is S.FAILED}
    assert {"finish:failed", "finish:timeout", "finish:gpu_unavailable", "finish:out_of_memory"} <= failures
    assert set(reached(S.AWAITING_APPROVAL)[S.QUEUED]) == {"approve"}
    assert set(reached(S.AWAITING_APPROVAL)[S.CANCELLED]) == {"reject", "request_cancel"}
    assert set(reached(S.QUEUED)[S.RUNNING]) == {"claim"}
    assert set(reached(S.QUEUED)[S.CANCELLED]) == {"request_cancel"}
    assert set(reached(S.QUEUED)[S.FAILED]) == {"fail_queued"}
    assert set(reached(S.RUNNING)[S.CANCELLING]) == {"request_cancel"}
    assert set(reached(S.RUNNING)[S.COMPLETED]) == {"finish:completed"}
    assert set(reached(S.RUNNING)[S.FAILED]) == failures | losses | {"requeue:launch_failed:tries",
                                                                       "out_of_memory:spent"}
    assert set(reached(S.RUNNING)[S.QUEUED]) == {f"requeue:{r}:room" for r in resuming} | unbounded | {
        "out_of_memory:retry"}
    # Out of memory is bounded by OOM_RETRIES (after_out_of_memory decides), not by MAX_RECOVERIES.
    assert unbounded == {"requeue:continuation:limit", "requeue:launch_failed:limit", "requeue:out_of_memory:limit"}
    assert set(reached(S.CANCELLING)[S.CANCELLED]) == {"finish:cancelled", "requeue:launch_failed:tries",
                                                       "out_of_memory:retry"} | {
        f"requeue:{r}:{label}" for r in resuming for label in ("limit", "room")}
    assert set(reached(S.CANCELLING)[S.COMPLETED]) == {"finish:completed"}
    assert set(reached(S.CANCELLING)[S.FAILED]) == failures | {"out_of_memory:spent"}


def test_launch_failures_in_a_row_fail_the_job_after_max_launch_attempts():
    job = fresh()
    for number in (1, 2):
        job = requeue(claim(job, at(number), 600), number, EndReason.LAUNCH_FAILED, at(number + 0.5), RATES, 0,
                      detail="quota exceeded", max_launch_attempts=3)
        assert job.status is S.QUEUED and job.recoveries == 0  # not a lost execution
    job = requeue(claim(job, at(3), 600), 3, EndReason.LAUNCH_FAILED, at(3.5), RATES, 0,
                  detail="quota exceeded", max_launch_attempts=3)
    assert job.status is S.FAILED and job.error.reason == "launch_failed"
    assert "3 launches failed in a row (MAX_LAUNCH_ATTEMPTS=3)" in job.error.message
    assert "quota exceeded" in job.error.message
    assert [a.end_reason for a in job.attempts] == [EndReason.LAUNCH_FAILED] * 3


def test_a_launch_that_worked_resets_the_count():
    job = fresh()
    job = requeue(claim(job, at(1), 600), 1, EndReason.LAUNCH_FAILED, at(1.5), RATES, 3, max_launch_attempts=2)
    started = worker_started(record_execution(claim(job, at(2), 600), 2, "exec-2", at(2.1)), 2, at(3), 60, "cpu", 0)
    job = requeue(started, 2, EndReason.INTERRUPTED, at(10), RATES, 3)
    job = requeue(claim(job, at(11), 600), 3, EndReason.LAUNCH_FAILED, at(11.5), RATES, 3, max_launch_attempts=2)
    assert job.status is S.QUEUED  # one failure in a row, not two


def test_gpu_unavailable_fails_the_job_without_a_retry():
    started = samples()[S.RUNNING][1]
    error = JobError(reason="gpu_unavailable", message="no NVIDIA driver found")
    job = finish(started, 1, EndReason.GPU_UNAVAILABLE, at(40), RATES, error=error)
    assert job.status is S.FAILED and job.recoveries == 0 and job.error.reason == "gpu_unavailable"
    assert job.attempts[-1].end_reason is EndReason.GPU_UNAVAILABLE
    assert not EndReason.GPU_UNAVAILABLE.resumes and not EndReason.GPU_UNAVAILABLE.counts_as_recovery


def test_a_new_job_may_be_created_awaiting_approval_and_only_a_new_one():
    assert INITIAL_STATUSES == {S.QUEUED, S.AWAITING_APPROVAL}
    assert not S.AWAITING_APPROVAL.is_active() and not S.AWAITING_APPROVAL.is_terminal()
    held = hold_for_approval(fresh(), [OVER], at(0))
    assert held.status is S.AWAITING_APPROVAL and held.approval.budgets == [OVER]
    assert held.approval.requested_at == at(0) and held.approval.decision is None
    assert hold_for_approval(fresh(), [], at(0)) is None  # nothing crossed: nothing to hold
    stored = fresh().model_copy(update={"version": 3})
    assert hold_for_approval(stored, [OVER], at(0)) is None  # a stored job is never moved back into it
    for status, jobs in samples().items():
        for job in jobs:
            if status is S.QUEUED and job.version == 0 and not job.attempts and job.approval is None:
                continue  # the new job itself
            assert hold_for_approval(job, [OVER], at(5)) is None, status


def test_approve_and_reject_record_who_when_and_why():
    held = hold_for_approval(fresh(), [OVER], at(0))
    approved = approve(held, "U-ADMIN", at(7))
    assert approved.status is S.QUEUED and approved.approval.decision == "approved"
    assert (approved.approval.decided_by, approved.approval.decided_at) == ("U-ADMIN", at(7))
    assert approved.approval.budgets == [OVER] and approved.finished_at is None
    assert approve(approved, "U-ADMIN", at(8)) is None and reject(approved, "U-ADMIN", at(8)) is None  # decided
    rejected = reject(held, "U-ADMIN", at(9), "  not this month ")
    assert rejected.status is S.CANCELLED and rejected.finished_at == at(9)
    assert (rejected.approval.decision, rejected.approval.reason) == ("rejected", "not this month")
    assert rejected.cancel.by == "U-ADMIN" and "not this month" in rejected.progress.message
    assert reject(held, "U-ADMIN", at(9)).approval.reason == "over budget"  # no words given
    cancelled = request_cancel(held, "U-OWNER", at(3))
    assert cancelled.status is S.CANCELLED and cancelled.cancel.by == "U-OWNER" and cancelled.approval.decision is None
