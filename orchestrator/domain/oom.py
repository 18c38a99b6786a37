"""Out of memory: the job runs again with half the batch, a bounded number of times, then fails.

An execution runs out of memory in one of two ways, and both end it ``out_of_memory`` through
``after_out_of_memory``:

- training raises ``torch.cuda.OutOfMemoryError`` (the worker's closing path, worker/closing.py);
  Ultralytics absorbs some of these itself (during an execution's first epoch it halves its own
  batch up to three times), so what reaches us is one it did not: a later epoch, validation, or a
  fourth one;
- the kernel kills the worker over WORKER_MEMORY_LIMIT (the dispatcher's recovery,
  orchestrator/recovery.py).

The job then goes back to the queue with half the batch (``next_batch``), resuming from its last
checkpoint when there is one (Ultralytics lets a resume change the batch: worker/training.py passes
it), at most ``OOM_RETRIES`` times per job and never below batch 1; after that it fails with a hint.
The submitted spec is kept as it was: the smaller batch is ``Job.batch_override``, each attempt
records the batch it ran with (``Attempt.batch_size``, set at claim), and the retries are counted
from the attempts themselves, so nothing else is stored. They do not count against MAX_RECOVERIES.
Pure domain code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from orchestrator.domain.cost import Rates
from orchestrator.domain.job import Attempt, EndReason, Job, JobError, Progress
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, requeue


class Retry(NamedTuple):
    """One execution that ran out of memory and the batch the job was retried with after it."""

    attempt: Attempt
    batch: int  # what it ran out of memory at
    smaller: int  # what the next execution runs with


def next_batch(batch: int, retries_used: int, max_retries: int) -> int | None:
    """The batch to retry with after running out of memory at ``batch``, ``retries_used`` retries already
    spent of ``max_retries``; None when none is left (the retries are used up, or the batch is 1 already)."""
    if retries_used >= max_retries or batch <= 1:
        return None
    return max(1, batch // 2)


def batch_of(job: Job, attempt: Attempt) -> int:
    """The batch ``attempt`` trained with (the spec's for one stored before attempts recorded it)."""
    return attempt.batch_size if attempt.batch_size is not None else job.spec.training_params.batch_size


def retries_used(job: Job) -> int:
    """Out-of-memory retries the job has had: every earlier execution that ran out of memory was retried
    (one that was not ended the job), so they are counted from the attempts before the current one."""
    return sum(1 for a in job.attempts[:-1] if a.end_reason is EndReason.OUT_OF_MEMORY)


def retries(job: Job) -> list[Retry]:
    """Every out-of-memory retry so far, oldest first: the execution, its batch and the next one's."""
    found = []
    for index, attempt in enumerate(job.attempts):
        if attempt.end_reason is not EndReason.OUT_OF_MEMORY:
            continue
        if index + 1 < len(job.attempts):
            smaller = batch_of(job, job.attempts[index + 1])
        elif job.status is JobStatus.QUEUED:  # waiting for its next execution
            smaller = job.batch_size
        else:
            continue  # the last one ended the job: failed (no retry left) or cancelled
        found.append(Retry(attempt, batch_of(job, attempt), smaller))
    return found


def retry_text(batch: int, smaller: int) -> str:
    """The words of one retry, for the thread and the job's progress message."""
    return f"out of memory at batch {batch} \u2192 retrying with batch {smaller}"


def failure_message(batch: int, used: int, max_retries: int, detail: str) -> str:
    """Why the job failed for good, with what to try next."""
    if batch <= 1:
        where = "out of memory even at batch 1"
        hint = "use a smaller model_params.input_size or architecture, or more memory"
    else:
        where = (f"out of memory at batch {batch} after {used} retr{'y' if used == 1 else 'ies'} with a smaller "
                 f"batch (OOM_RETRIES={max_retries})")
        hint = (f"resubmit with batch_size {max(1, batch // 2)} or less, a smaller model_params.input_size "
                "or architecture, or more memory")
    return f"{where}: {detail}. Try: {hint}."


def after_out_of_memory(job: Job, attempt: int, now: datetime, rates: Rates, max_retries: int,
                        max_recoveries: int, estimate: Rates | None = None, *, detail: str,
                        progress: Progress | None = None, tail: list[str] | None = None,
                        **closing: Any) -> Job | None:
    """End the current attempt ``out_of_memory``: back to the queue with half the batch while retries are
    left (``requeue``: a cancelling job ends cancelled), else failed with a hint (``finish``). ``closing``:
    ``lost_seconds``, ``end_epoch``, ``artifacts``, ``stopped_at``, ``training_seconds`` as the closer
    knows them; ``progress`` is the failed job's (the worker's, with the epochs its checkpoint holds)."""
    current = job.current_attempt
    if current is None or current.number != attempt:
        return None
    batch, used = batch_of(job, current), retries_used(job)
    smaller = next_batch(batch, used, max_retries)
    if smaller is None:
        error = JobError(reason=EndReason.OUT_OF_MEMORY.value, message=failure_message(batch, used, max_retries,
                                                                                       detail), tail=tail or [])
        failed = (progress or job.progress).model_copy(update={"message": f"Failed: out of memory at batch {batch}"})
        return finish(job, attempt, EndReason.OUT_OF_MEMORY, now, rates, estimate, error=error, progress=failed,
                      detail=f"{detail}; no retry left", artifacts=closing.get("artifacts"),
                      stopped_at=closing.get("stopped_at"), training_seconds=closing.get("training_seconds"))
    requeued = requeue(job, attempt, EndReason.OUT_OF_MEMORY, now, rates, max_recoveries, estimate,
                       detail=f"{detail}; retrying with batch {smaller}", **closing)
    if requeued is None or requeued.status is not JobStatus.QUEUED:
        return requeued
    words = retry_text(batch, smaller)
    return requeued.model_copy(update={
        "batch_override": smaller,
        "progress": requeued.progress.model_copy(update={"message": words[0].upper() + words[1:]}),
    })
