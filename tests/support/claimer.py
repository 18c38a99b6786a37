"""One side of the claim race (tests/contract/test_claim_race.py): a real Dispatcher on its own store.

``Claimer`` is a real ``orchestrator.dispatcher.Dispatcher`` over its own store
connection (SQLite file or Firestore client), as a second service instance would
have, with a launcher that starts nothing and records what it was asked to start.
Its store is wrapped only to count every claim the dispatcher tried
(``update(kind="status:running")``) and whether it won, and to hold the first claim
of a pass at a barrier (``before_claims``) until the other side has read the queue
too: so both passes hold the same candidates and race for each one. Nothing orders
the claims themselves; the store's compare-and-set is all that decides them.

Run as a process (``python -m tests.support.claimer local PATH`` or ``gcp PROJECT``),
it prints ``ready``; then for each line ``go`` it runs one dispatch pass which,
at its first claim, prints ``read`` and waits for the line ``claim``; the pass's
record follows as one JSON line. ``quit`` ends it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import Job
from orchestrator.launchers.base import Launcher
from orchestrator.stores.base import JobStore

COLLECTION = "training_jobs"


class RecordingLauncher(Launcher):
    """Starts nothing: records each (task_id, attempt) it was asked to launch."""

    def __init__(self, name: str):
        self.name = name
        self.launched: list[tuple[str, int]] = []

    def launch(self, job: Job, attempt: int) -> str:
        self.launched.append((job.task_id, attempt))
        return f"race:{self.name}:{job.task_id}:{attempt}"

    def stop(self, execution: str) -> None:
        raise AssertionError(f"nothing should be stopped in a claim race ({execution})")


class CountingStore:
    """The store, with a count of the claims tried through it (and won) in the current round."""

    def __init__(self, store: JobStore):
        self._store = store
        self.before_claims: Callable[[], None] = lambda: None  # called once, before the pass's first claim
        self.tried: list[str] = []
        self.won: list[str] = []
        self.first_try: float | None = None  # wall-clock time of the round's first claim try

    def update(self, task_id: str, fn: Any, kind: str = "update") -> Job | None:
        if kind != "status:running":
            return self._store.update(task_id, fn, kind)
        if self.first_try is None:
            self.before_claims()
            self.first_try = time.time()
        self.tried.append(task_id)
        changed = self._store.update(task_id, fn, kind)
        if changed is not None:
            self.won.append(task_id)
        return changed

    def reset(self) -> None:
        self.tried, self.won, self.first_try = [], [], None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def open_store(kind: str, where: str) -> JobStore:
    """A store of its own: ``local`` on the SQLite file ``where``, ``gcp`` on project ``where`` (emulator)."""
    if kind == "local":
        from orchestrator.stores.sqlite import SqliteJobStore

        return SqliteJobStore(Path(where), write_gap=0)
    from google.cloud import firestore

    from orchestrator.stores.firestore import FirestoreJobStore

    return FirestoreJobStore(firestore.Client(project=where), COLLECTION, close_client=True, write_gap=0)


@dataclass
class Round:
    """What one claimer did in one round."""

    name: str
    tried: list[str]
    won: list[str]
    launched: list[str]
    started: float  # wall-clock time its pass began
    first_try: float | None
    ended: float
    error: str | None = None


class Claimer:
    """A Dispatcher on its own store with a recording launcher."""

    def __init__(self, name: str, kind: str, where: str, home: Path):
        self.name = name
        self.store = CountingStore(open_store(kind, where))
        self.launcher = RecordingLauncher(name)
        settings = Settings(LAXAI_HOME=home, MAX_CONCURRENT_JOBS=100_000, MAX_JOBS_PER_TENANT=100_000,
                            STORE_WRITE_GAP=0)
        backend = Backend(settings=settings, store=self.store, queue=None, artifacts=None, registry=None,
                          _launcher=self.launcher)
        self.dispatcher = Dispatcher(backend, owner=f"claimer-{name}")

    def run_round(self, before_claims: Callable[[], None]) -> Round:
        """One dispatch pass (the claim path, without the instance lock that would keep the other out)."""
        self.store.reset()
        self.store.before_claims = before_claims
        launched_before = len(self.launcher.launched)
        started = time.time()
        error = None
        try:
            self.dispatcher.dispatch(self.dispatcher.clock())
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            error = f"{type(exc).__name__}: {exc}"
        return Round(self.name, list(self.store.tried), list(self.store.won),
                     [task for task, _ in self.launcher.launched[launched_before:]], started,
                     self.store.first_try, time.time(), error)

    def close(self) -> None:
        self.store.close()


def run_threads(claimers: list[Claimer]) -> list[Round]:
    """One round with each claimer in its own thread, released together, claiming once all have read."""
    start, read = threading.Barrier(len(claimers)), threading.Barrier(len(claimers))
    rounds: list[Round | None] = [None] * len(claimers)

    def side(index: int) -> None:
        start.wait(timeout=30)
        rounds[index] = claimers[index].run_round(lambda: read.wait(timeout=30))

    threads = [threading.Thread(target=side, args=(i,)) for i in range(len(claimers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [r for r in rounds if r is not None]


def main(argv: list[str]) -> int:
    kind, where, name, home = argv
    claimer = Claimer(name, kind, where, Path(home))
    print("ready", flush=True)

    def read_then_wait() -> None:
        print("read", flush=True)
        assert sys.stdin.readline().strip() == "claim"

    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(json.dumps(claimer.run_round(read_then_wait).__dict__), flush=True)
    claimer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
