"""The write budget's rule on its own (orchestrator/stores/write_budget.py); the stores that enforce it
are checked in tests/contract, the callers that plan around it in test_dispatcher and tests/worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.job import utcnow
from orchestrator.stores.write_budget import STAMP_SLACK, TooSoon, WriteBudget


def test_a_write_waits_for_the_rest_of_the_gap_and_never_more_than_one_gap():
    budget = WriteBudget(1.0)
    assert budget.wait_after(100.0, 100.25) == pytest.approx(0.75)
    assert budget.wait_after(100.0, 101.0) == 0 and budget.wait_after(100.0, 250.0) == 0
    assert budget.wait_after(100.0, 40.0) == 1.0  # our clock far behind the last write's: one gap, no more
    assert WriteBudget(0).wait_after(100.0, 100.0) == 0


def test_a_negative_gap_is_no_gap():
    budget = WriteBudget(-3)
    assert budget.gap == 0 and not budget.on and budget.longest_deferral == 0


def test_a_job_is_too_young_to_claim_until_a_gap_and_the_stamp_slack_have_passed():
    budget, now = WriteBudget(1.0), utcnow()
    assert budget.claim_wait(now, now) == pytest.approx(1.0 + STAMP_SLACK)
    assert budget.claim_wait(now - timedelta(seconds=1), now) == pytest.approx(STAMP_SLACK)
    assert budget.claim_wait(now - timedelta(seconds=2), now) == 0
    # A writer's clock an hour ahead of ours delays the claim by one deferral at most.
    assert budget.claim_wait(now + timedelta(hours=1), now) == budget.longest_deferral
    assert WriteBudget(0).claim_wait(now + timedelta(hours=1), now) == 0


def test_another_writers_stamp_counts_slack_later_but_not_after_now():
    budget = WriteBudget(1.0)
    assert budget.counted_commit(100.0, 200.0) == 100.0 + STAMP_SLACK
    assert budget.counted_commit(500.0, 200.0) == 200.0


def test_check_backs_out_of_a_write_too_soon_unless_it_already_waited_for_that_write():
    budget = WriteBudget(1.0)
    with pytest.raises(TooSoon) as early:
        budget.check("stamp-1", 100.0, None, now=100.4)
    assert early.value.wait == pytest.approx(0.6) and early.value.last_write == "stamp-1"
    budget.check("stamp-1", 100.0, "stamp-1", now=100.4)  # waited a gap for it: goes ahead
    budget.check("stamp-1", 100.0, None, now=101.0)  # old enough
    budget.check(None, None, None, now=0.0)  # no record of a previous write
    WriteBudget(0).check("stamp-1", 100.0, None, now=100.0)  # no budget


def test_keep_gap_retries_after_the_wait_with_the_write_it_waited_for():
    budget, slept, seen = WriteBudget(1.0), [], []
    stamps = iter(["a", "b"])

    def attempt(waited_for):
        seen.append(waited_for)
        if len(seen) <= 2:
            raise TooSoon(0.5 * len(seen), next(stamps))
        return "written"

    assert budget.keep_gap(attempt, sleep=slept.append) == "written"
    assert seen == [None, "a", "b"] and slept == [0.5, 1.0]
