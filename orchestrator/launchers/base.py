"""The Launcher contract: start one execution of a claimed job, and stop it hard.

Implementations: ``launchers.local`` (worker subprocesses) and ``launchers.cloudrun``
(Cloud Run Jobs executions). The dispatcher claims a job (compare-and-set) before
it launches, so a launcher never decides whether a job may run, only how.
"""

from __future__ import annotations

import abc

from orchestrator.domain.job import Job


class LaunchError(RuntimeError):
    """The execution could not be started; the job goes back to the queue."""


class Launcher(abc.ABC):
    """Starts and stops worker executions."""

    @abc.abstractmethod
    def launch(self, job: Job, attempt: int) -> str:
        """Start ``python -m worker`` for this job's attempt; return an execution handle."""

    @abc.abstractmethod
    def stop(self, execution: str) -> None:
        """Stop an execution hard (after a cancel grace period or a lost lease)."""

    def wants_preparing(self) -> bool:
        """True while ``prepare`` has something to do."""
        return False

    def prepare(self) -> None:
        """Get ready for the launches to come; may block for seconds (the local launcher starts its
        warm-start process). The dispatcher calls it when a queued job waits, before its pass
        takes the dispatcher lock or claims anything: never between a claim and its launch, where
        a crash would leave a claimed job without an execution until STARTUP_GRACE_SECONDS."""

    def exited(self, execution: str) -> int | None:
        """The exit code if the launcher knows the execution has ended, else None."""
        return None

    def out_of_memory(self, execution: str) -> str | None:
        """Why the execution was killed for using too much memory (read after ``exited``), else None."""
        return None

    def close(self) -> None:
        """Release resources."""
