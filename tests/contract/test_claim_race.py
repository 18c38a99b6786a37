"""The claim race made real: two dispatchers claim the same queued jobs at once, on both backends.

Each side is a real Dispatcher (tests/support/claimer.py) on its own store connection,
running its dispatch pass (read the queue, claim each job by compare-and-set, launch
what it won) with a launcher that only records. The two are released together each
round, as threads (a barrier) and as separate processes (driven line by line), over
many rounds of fresh jobs (SIZES); each side holds its first claim until both have
read the queue, so both race for the same candidates. Nothing in the test orders the
claims: only the store's compare-and-set does. The test checks that the passes really overlapped and that both
sides tried claims in every round (some of them lost: real contention), then that every
job was started exactly once, by the side whose execution the store recorded.

Fewer rounds on the Firestore emulator: it settles two transactions that read the same
document by a lock timeout of about 2 s, so each lost race there costs seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.domain.status import JobStatus
from tests.contract.support import make_job
from tests.gcp_fixtures import GCP_PROJECT
from tests.support.claimer import Claimer, Round, run_threads

REPO = Path(__file__).resolve().parents[2]
SIZES = {"local": (20, 10), "gcp": (3, 4)}  # rounds, jobs per round
SIDES = ("a", "b")


@pytest.fixture
def where(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where both sides find the store: the SQLite file, or the emulator's project (cleared)."""
    if backend == "gcp":
        request.getfixturevalue("clean_firestore")
        return GCP_PROJECT
    return str(tmp_path / "laxai.db")


def seed(store, jobs: int) -> list[str]:
    """``jobs`` queued jobs for the next round, over a few tenants."""
    return [store.create(make_job(f"team-{i % 3}", age=float(jobs - i)))[0].task_id for i in range(jobs)]


def check(rounds: list[tuple[list[str], list[Round]]], store, expected: int) -> None:
    assert len(rounds) == expected
    contended = 0
    for number, (ids, sides) in enumerate(rounds):
        assert [side.error for side in sides] == [None, None], f"round {number}"
        assert sorted(side.name for side in sides) == list(SIDES)
        # Both passes ran at once, and both tried to claim jobs of this round.
        assert max(s.started for s in sides) < min(s.ended for s in sides), f"round {number}: no overlap"
        # Both read the queue before either claimed: each tried every job of the round, once.
        assert all(Counter(side.tried) == Counter(ids) for side in sides), f"round {number}"
        contended += sum(len(side.tried) - len(side.won) for side in sides)
        # Each of the round's jobs won and launched by exactly one side.
        won = Counter(task for side in sides for task in side.won)
        launched = Counter(task for side in sides for task in side.launched)
        assert won == launched == Counter(ids), f"round {number}: {won}"
    # So every job had one lost compare-and-set: the two really raced for each of them.
    assert contended == sum(len(ids) for ids, _ in rounds)
    every = {task: side.name for _, sides in rounds for side in sides for task in side.won}
    for task, winner in every.items():
        job = store.get(task)
        assert job.status is JobStatus.RUNNING and len(job.attempts) == 1, task
        assert job.current_attempt.execution == f"race:{winner}:{task}:1"


def test_two_dispatcher_threads_start_each_job_once(backend, where, open_store, tmp_path):
    seeder, (count, jobs) = open_store(), SIZES[backend]
    claimers = [Claimer(name, backend, where, tmp_path / name) for name in SIDES]
    try:
        rounds = [(seed(seeder, jobs), run_threads(claimers)) for _ in range(count)]
    finally:
        for claimer in claimers:
            claimer.close()
    check(rounds, seeder, count)


class ClaimerProcess:
    """``python -m tests.support.claimer`` as a child process, driven a round at a time."""

    def __init__(self, name: str, backend: str, where: str, home: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.claimer", backend, where, name, str(home)],
            cwd=REPO, env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout.readline().strip() == "ready", f"claimer {name} did not start"

    def say(self, line: str) -> None:
        self.process.stdin.write(f"{line}\n")
        self.process.stdin.flush()

    def has_read(self) -> None:
        line = self.process.stdout.readline()
        assert line.strip() == "read", f"claimer said {line!r} (exit {self.process.poll()})"

    def result(self) -> Round:
        line = self.process.stdout.readline()
        assert line, f"claimer exited with {self.process.poll()}"
        return Round(**json.loads(line))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_two_dispatcher_processes_start_each_job_once(backend, where, open_store, tmp_path):
    seeder, (count, jobs) = open_store(), SIZES[backend]
    children = [ClaimerProcess(name, backend, where, tmp_path / name) for name in SIDES]
    rounds = []
    try:
        for _ in range(count):
            ids = seed(seeder, jobs)
            for child in children:
                child.say("go")
            for child in children:
                child.has_read()  # both passes have read the queue and wait at their first claim
            for child in children:
                child.say("claim")
            rounds.append((ids, [child.result() for child in children]))
    finally:
        for child in children:
            child.close()
    check(rounds, seeder, count)
