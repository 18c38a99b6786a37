"""The cost split rule (orchestrator/domain/cost_split.py): training + overhead + lost = billed, lost only
after an end that resumes, each part priced; driven through the real transitions where it can be."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bot import blocks
from orchestrator.domain.cost import rates_for
from orchestrator.domain.cost_split import split_attempt, split_text, worth_showing
from orchestrator.domain.job import Attempt, CostSummary, EndReason, Job, Progress
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, finish, mark_training, requeue, worker_started

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RATES = rates_for("nvidia-l4", 1, "4000m", "16Gi")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ended(reason: EndReason, **fields) -> Attempt:
    """An attempt billed from 0 to 100 s that ended for ``reason``."""
    return Attempt(number=1, claimed_at=at(0), started_at=at(0), ended_at=at(100), end_reason=reason, **fields)


def assert_adds_up(split, billed: float) -> None:
    assert split.training + split.overhead + split.lost == pytest.approx(billed)
    assert min(split.training, split.overhead, split.lost) >= 0


def test_a_completed_attempt_is_training_and_overhead_and_loses_nothing():
    split = split_attempt(ended(EndReason.COMPLETED, training_seconds=70.0, lost_seconds=5.0))
    assert (split.training, split.overhead, split.lost) == (70.0, 30.0, 0.0)


@pytest.mark.parametrize("reason", [EndReason.INTERRUPTED, EndReason.CONTINUATION])
def test_after_an_end_that_resumes_the_training_since_the_checkpoint_is_lost(reason):
    split = split_attempt(ended(reason, training_seconds=70.0, lost_seconds=12.0))
    assert (split.training, split.overhead, split.lost) == (58.0, 30.0, 12.0)
    assert_adds_up(split, 100)


@pytest.mark.parametrize("reason", [EndReason.CANCELLED, EndReason.FAILED, EndReason.TIMEOUT])
def test_an_end_that_does_not_resume_loses_nothing(reason):
    split = split_attempt(ended(reason, training_seconds=70.0, lost_seconds=12.0))
    assert split.lost == 0 and split.training == 70.0


def test_lost_is_never_more_than_the_training_and_training_never_more_than_billed():
    split = split_attempt(ended(EndReason.INTERRUPTED, training_seconds=500.0, lost_seconds=900.0))
    assert (split.training, split.overhead, split.lost) == (0.0, 0.0, 100.0)
    assert_adds_up(split, 100)


def test_a_lost_worker_loses_everything_after_its_last_known_checkpoint():
    # No closing write: only the marks its progress writes stamped, and the dispatcher's end.
    attempt = ended(EndReason.LEASE_EXPIRED, training_started_at=at(20), checkpoint_at=at(60))
    split = split_attempt(attempt)
    assert (split.overhead, split.training, split.lost) == (20.0, 40.0, 40.0)
    no_checkpoint = split_attempt(ended(EndReason.LEASE_EXPIRED, training_started_at=at(20)))
    assert (no_checkpoint.overhead, no_checkpoint.training, no_checkpoint.lost) == (20.0, 0.0, 80.0)
    nothing_known = split_attempt(ended(EndReason.LEASE_EXPIRED))
    assert (nothing_known.overhead, nothing_known.training, nothing_known.lost) == (100.0, 0.0, 0.0)


def test_an_attempt_that_never_started_splits_nothing():
    split = split_attempt(Attempt(number=1, claimed_at=at(0), ended_at=at(30), end_reason=EndReason.LAUNCH_FAILED))
    assert (split.training, split.overhead, split.lost) == (0.0, 0.0, 0.0)


def test_a_running_attempt_counts_its_training_up_to_now():
    running = Attempt(number=1, claimed_at=at(0), started_at=at(0), training_started_at=at(10))
    split = split_attempt(running, now=at(50))
    assert (split.overhead, split.training, split.lost) == (10.0, 40.0, 0.0)


def job_through_two_attempts() -> Job:
    """Interrupted once after a checkpoint, then completed: the real transitions, clocks given."""
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"), created_at=T0, updated_at=T0,
              progress=Progress(total_epochs=3))
    job = claim(job, at(0), 600)
    # The process began 1 s after the claim; the start write came 9 s later (imports, set-up).
    job = worker_started(job, 1, at(10), 60, "cuda:0 NVIDIA L4", 0, began=at(1))
    job = mark_training(job, 1, at(15), at(40))
    job = requeue(job, 1, EndReason.INTERRUPTED, at(51), RATES, 3, lost_seconds=11.0, training_seconds=35.0)
    job = claim(job, at(60), 600)
    job = worker_started(job, 2, at(70), 60, "cuda:0 NVIDIA L4", 1, began=at(62))
    return finish(job, 2, EndReason.COMPLETED, at(162), RATES, training_seconds=80.0)


def test_through_the_transitions_the_parts_add_up_to_billed_and_are_priced():
    job = job_through_two_attempts()
    cost = job.cost
    # Billed from each process's start (not the start write) to the attempt's end: 50 s + 100 s.
    assert cost.billed_seconds == pytest.approx(150.0)
    assert (cost.training_s, cost.lost_s, cost.overhead_s) == (pytest.approx(24 + 80), 11.0, pytest.approx(35.0))
    assert cost.training_s + cost.overhead_s + cost.lost_s == pytest.approx(cost.billed_seconds)
    assert cost.training_usd == pytest.approx(104 * RATES.per_second, abs=1e-6)
    assert cost.lost_usd == pytest.approx(11 * RATES.per_second, abs=1e-6)
    assert cost.training_usd + cost.overhead_usd + cost.lost_usd == pytest.approx(cost.usd, abs=1e-5)


def test_the_process_start_is_billed_but_never_before_the_claim_or_after_the_start_write():
    job = claim(Job(tenant_id="t", spec=JobSpec(tenant_id="t")), at(0), 600)
    early = worker_started(job, 1, at(10), 60, "cpu", 0, began=at(-30))  # a skewed worker clock
    assert early.current_attempt.started_at == at(0)
    assert worker_started(job, 1, at(10), 60, "cpu", 0, began=at(3)).current_attempt.started_at == at(3)
    assert worker_started(job, 1, at(10), 60, "cpu", 0).current_attempt.started_at == at(10)


def test_training_marks_come_only_from_the_live_attempt_and_keep_the_first_start():
    job = worker_started(claim(Job(tenant_id="t", spec=JobSpec(tenant_id="t")), at(0), 600), 1, at(5), 60, "cpu", 0)
    marked = mark_training(job, 1, at(8), None)
    assert marked.current_attempt.training_started_at == at(8)
    again = mark_training(marked, 1, at(20), at(30))
    assert (again.current_attempt.training_started_at, again.current_attempt.checkpoint_at) == (at(8), at(30))
    assert mark_training(again, 2, at(40), at(50)) is again  # a stale attempt changes nothing
    assert job.status is JobStatus.RUNNING


def test_the_split_is_shown_when_overhead_or_loss_passes_five_percent():
    base = dict(billed_seconds=100.0, usd=1.0, gpu_type="nvidia-l4")
    assert not worth_showing(CostSummary(**base, training_s=96, overhead_s=4, training_usd=0.96, overhead_usd=0.04))
    assert worth_showing(CostSummary(**base, training_s=94, overhead_s=6))
    assert worth_showing(CostSummary(**base, training_s=90, overhead_s=4, lost_s=6))
    assert not worth_showing(CostSummary())
    text = split_text(CostSummary(**base, training_s=88, overhead_s=5, lost_s=7, training_usd=0.88,
                                  overhead_usd=0.05, lost_usd=0.07))
    assert text.startswith("training $0.88 (1m 28s)")
    assert "overhead $0.05 (5s: start, imports, data, uploads)" in text
    assert "lost $0.07 (7s redone after an interruption)" in text


def test_the_completion_reply_carries_the_split_only_when_it_is_worth_showing():
    job = job_through_two_attempts()
    assert worth_showing(job.cost)
    text = json.dumps(blocks.completed(job).blocks, ensure_ascii=False)
    assert f"Cost {blocks.format_usd(job.cost.usd)}: training" in text and "lost" in text
    mostly_training = job.model_copy(update={"cost": job.cost.model_copy(
        update={"training_s": 148.0, "overhead_s": 2.0, "lost_s": 0.0})})
    assert "overhead" not in json.dumps(blocks.completed(mostly_training).blocks)


def test_the_resumed_reply_after_a_lost_worker_says_what_the_rule_counts_as_lost():
    job = claim(Job(tenant_id="t", spec=JobSpec(tenant_id="t"), progress=Progress(total_epochs=3)), at(0), 600)
    job = worker_started(job, 1, at(10), 60, "cpu", 0, began=at(1))
    job = mark_training(job, 1, at(15), at(40))
    job = requeue(job, 1, EndReason.LEASE_EXPIRED, at(70), RATES, 3, detail="no heartbeat")  # the dispatcher
    job = worker_started(claim(job, at(71), 600), 2, at(80), 60, "cpu", 1)
    assert job.cost.lost_s == 30.0  # from the last stamped checkpoint to the end the dispatcher recorded
    assert "lost 30s ($" in json.dumps(blocks.resumed(job, 2).blocks)
