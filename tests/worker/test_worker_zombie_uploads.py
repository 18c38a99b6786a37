"""Zombie fencing of checkpoint uploads, with a real worker process.

The zombie is a worker cut off from the store (every write fails, so it never learns it lost the
job) while the artifact store still takes its uploads: exactly the execution whose lease expired
that nothing but the artifact store's own fence can stop. The new attempt's checkpoints must stay
what a resume reads.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import time

import pytest

from orchestrator.artifacts.base import Superseded
from orchestrator.artifacts.local import LocalArtifactStore
from orchestrator.domain.job import EndReason, utcnow
from orchestrator.domain.transitions import requeue
from worker.checkpoints import BEST, LAST, CheckpointUploader
from worker.stop import StopFlags


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def freeze(proc, db) -> None:
    """SIGSTOP the worker at a moment it holds no write lock on the store (else the takeover would wait on it)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(db, timeout=0.5, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # stopped inside a write: let it finish, try again
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            probe.close()
    raise AssertionError("the worker held the store's write lock at every try")


@pytest.mark.slow
def test_a_zombie_uploads_nothing_over_the_new_attempts_checkpoints(harness, tmp_path):
    task_id = harness.submit(dataset="synthetic:96", epochs=4)
    artifacts = harness.backend.artifacts
    # A lease far longer than the test: the zombie's heartbeat never gives up on its own.
    zombie = harness.start(task_id, 1, LEASE_SECONDS="600", LAXAI_SQLITE_BUSY_TIMEOUT="0.3")
    harness.wait_until(task_id, lambda j: j.progress.epoch >= 1 and artifacts.exists(task_id, LAST), zombie)

    # Frozen while the job is taken over: a progress write landing between the takeover and the
    # lock below would tell the zombie it lost the job (it would exit instead of training on).
    freeze(zombie.proc, harness.home / "laxai.db")
    # The dispatcher took the job over; attempt 2 started and uploaded its own checkpoints.
    rates = harness.settings.rates("cpu")
    assert harness.store.update(task_id, lambda j: requeue(j, 1, EndReason.LEASE_EXPIRED, utcnow(), rates, 3),
                                kind="status:queued")
    assert harness.claim(task_id) == 2
    mine = tmp_path / "attempt-2"
    mine.mkdir()
    assert artifacts.download(task_id, LAST, mine / LAST)
    shutil.copyfile(mine / LAST, mine / BEST)
    (mine / BEST).write_bytes((mine / BEST).read_bytes() + b"\0")  # best.pt told apart from last.pt
    for name in (LAST, BEST):
        artifacts.upload(task_id, name, mine / name, attempt=2)

    # Cut the zombie off from the store: its progress writes and heartbeats fail and it trains on.
    lock = sqlite3.connect(harness.home / "laxai.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    zombie.proc.send_signal(signal.SIGCONT)
    try:
        deadline = time.monotonic() + 240
        while "checkpoint refused" not in zombie.log.read_text(errors="replace"):
            assert zombie.proc.poll() is None, f"zombie exited before uploading again\n{zombie.tail()}"
            assert time.monotonic() < deadline, zombie.tail()
            time.sleep(0.1)
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert zombie.wait() == 3, zombie.tail()  # it stops, writing nothing more
    assert "a later attempt (2) owns the checkpoints" in zombie.tail(200)
    for name in (LAST, BEST):  # what a resume (worker.checkpoints.fetch_resume) downloads
        assert artifacts.download(task_id, name, tmp_path / "resume" / name)
        assert digest(tmp_path / "resume" / name) == digest(mine / name), name
        assert artifacts.owner(task_id, name) == 2
    with pytest.raises(Superseded):  # and the fence holds for attempt 1 whatever it tries
        artifacts.upload(task_id, LAST, mine / BEST, attempt=1)
    assert harness.inspect_checkpoint(tmp_path / "resume" / LAST)["optimizer"]  # still a resumable checkpoint


def test_the_uploader_of_a_superseded_attempt_uploads_nothing_and_raises_lost(tmp_path):
    """The uploader's side, without training: attempt 2 claimed the files after attempt 1 started;
    attempt 1's background and final uploads are refused and it learns that it lost the job."""
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    (tmp_path / "a2.pt").write_bytes(b"attempt 2")
    flags = StopFlags()
    zombie = CheckpointUploader(artifacts, "task-1", tmp_path / "staging", flags, attempt=1)
    zombie.start()
    try:
        artifacts.claim("task-1", BEST, 2)  # as attempt 2's uploader does when it starts
        artifacts.upload("task-1", LAST, tmp_path / "a2.pt", attempt=2)
        (tmp_path / "a1.pt").write_bytes(b"attempt 1, a later epoch")
        zombie.submit(LAST, tmp_path / "a1.pt", epochs_done=3)
        deadline = time.monotonic() + 10
        while not flags.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flags.lost and "a later attempt (2)" in flags.lost_why
        assert zombie.upload_now(BEST, tmp_path / "a1.pt", epochs_done=3) == ""
        assert zombie.uploaded == {}
    finally:
        zombie.stop()
    assert artifacts.download("task-1", LAST, tmp_path / "read.pt")
    assert (tmp_path / "read.pt").read_bytes() == b"attempt 2"
    assert not artifacts.exists("task-1", BEST)
