"""Thread replies for the out-of-memory watchdog (orchestrator/domain/oom.py).

One reply per retry, keyed ``oom:N`` by the plan (bot/plan.py) with N the number of the execution
that ran out of memory: at which batch it ran out, the batch the job runs with next and where it
goes on from. The failure once no retry is left is the ordinary final reply (bot/blocks.py
``failed``), whose error message carries the hint. Pure functions of a Job, like bot/blocks.py.
"""

from __future__ import annotations

from orchestrator.domain.job import Job
from orchestrator.domain.oom import Retry, retries, retry_text

from bot.blocks import Message, clip, escape, reply

CAUSE_CHARS = 300


def retry_of(job: Job, number: int) -> tuple[int, Retry] | None:
    """(1-based count, the retry) after execution ``number`` ran out of memory; None if it was not retried."""
    for count, found in enumerate(retries(job), start=1):
        if found.attempt.number == number:
            return count, found
    return None


def retried(job: Job, number: int) -> Message:
    """Execution ``number`` ran out of memory and the job runs again with half the batch."""
    found = retry_of(job, number)
    if found is None:
        raise ValueError(f"execution {number} of job {job.task_id} was not retried after running out of memory")
    count, retry = found
    words = retry_text(retry.batch, retry.smaller)
    total = job.progress.total_epochs or job.spec.training_params.epochs
    epoch = retry.attempt.end_epoch or 0
    where = f"resuming from the checkpoint at epoch {epoch}/{total}" if epoch else "starting over (no checkpoint yet)"
    text = f":warning: *{words[0].upper()}{words[1:]}* (retry {count}), {where}."
    cause = (retry.attempt.detail or "").removesuffix(f"; retrying with batch {retry.smaller}")
    if cause:
        text += f"\n{escape(clip(cause, CAUSE_CHARS))}"
    return reply(text)
