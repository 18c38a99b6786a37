"""SlackThreads contract (bot/threads/base.py): the Slack ledger's own record, the same from SQLite
(local, in the job store's database file) and Firestore (gcp, the emulator).

``open_threads`` makes stores of the backend on one database, each with its own connection or
client, as two processes (two notifiers) would have.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from bot.ledger import Ledger
from bot.threads.base import CLAIM_TTL, SlackThread
from orchestrator.domain.transitions import set_notify
from tests.contract.support import make_job


@pytest.fixture
def open_threads(backend: str, tmp_path, request: pytest.FixtureRequest):
    opened = []
    if backend == "gcp":
        request.getfixturevalue("clean_firestore")

    def make():
        if backend == "local":
            from bot.threads.sqlite import SqliteSlackThreads

            made = SqliteSlackThreads(tmp_path / "laxai.db")
        else:
            from google.cloud import firestore

            from bot.threads.firestore import FirestoreSlackThreads
            from tests.gcp_fixtures import GCP_PROJECT

            made = FirestoreSlackThreads(firestore.Client(project=GCP_PROJECT))
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


@pytest.fixture
def threads(open_threads):
    return open_threads()


def posted(key: str, ts: str):
    return lambda r: replace(r, posted={**r.posted, key: ts})


def run_threads(count: int, target) -> None:
    workers = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(w.is_alive() for w in workers)


def test_nothing_is_stored_until_the_first_change(threads):
    assert threads.get("t1") is None
    assert threads.update("t1", lambda r: None) is None  # no change: nothing stored
    assert threads.update("t1", lambda r: r) is None  # an equal record is no change either
    assert threads.get("t1") is None


def test_an_update_stores_the_record_with_the_next_version(threads):
    first = threads.update("t1", lambda r: replace(r, card_ts="1.000001", card_channel="C1", thread_ts="1.000001"))
    assert first.version == 1 and first.card_ts == "1.000001"
    assert threads.get("t1") == first
    second = threads.update("t1", posted("card", "1.000001"))
    assert second.version == 2 and dict(second.posted) == {"card": "1.000001"} and second.card_channel == "C1"
    assert threads.get("t1") == second
    assert threads.get("t2") is None  # keyed by job


def test_every_field_round_trips(threads):
    full = SlackThread("t1", card_ts="1.1", card_channel="C1", thread_ts="0.9", posted={"card": "1.1"},
                       pending={"final": {"owner": "host-a", "at": 1700000000.5}}, gave_up={"started": "why"},
                       card_done="abc", retries=("r1", "r2"))
    stored = threads.update("t1", lambda r: replace(full, version=r.version))
    assert stored == replace(full, version=1)
    assert threads.get("t1").to_dict() == replace(full, version=1).to_dict()


def test_a_seed_is_the_starting_point_only_when_nothing_is_stored(threads):
    seed = SlackThread.from_notify("t1", {"card_ts": "5.5", "posted": {"card": "5.5"}})
    stored = threads.update("t1", posted("started", "6.6"), seed)
    assert dict(stored.posted) == {"card": "5.5", "started": "6.6"} and stored.card_ts == "5.5"
    ignored = SlackThread.from_notify("t1", {"card_ts": "other"})
    assert threads.update("t1", posted("final", "7.7"), ignored).card_ts == "5.5"


def test_concurrent_updates_from_two_stores_lose_nothing(open_threads):
    stores = [open_threads(), open_threads()]
    writes = 8

    def bump(i: int) -> None:
        assert stores[i % 2].update("t1", posted(f"milestone:{i}", str(i))) is not None

    run_threads(writes, bump)
    final = stores[0].get("t1")
    assert len(final.posted) == writes and final.version == writes


def test_a_claim_is_won_once_among_racing_notifiers(open_threads):
    job = make_job(channel="C1")
    ledgers = [Ledger(open_threads(), f"host-{i}") for i in range(4)]
    states: list[str] = []

    def claim(i: int) -> None:
        states.append(ledgers[i].claim(job, "final", known_clean=False)[0])

    run_threads(4, claim)
    assert sorted(states) == ["busy", "busy", "busy", "go"]


def test_the_four_claim_states(threads):
    job = make_job(channel="C1")
    ours, other = Ledger(threads, "host-a"), Ledger(threads, "host-b")
    state, record = ours.claim(job, "card", known_clean=False)
    assert state == "go" and record.pending["card"]["owner"] == "host-a"
    assert other.claim(job, "card", known_clean=False)[0] == "busy"  # a live notifier's fresh intent
    assert ours.claim(job, "card", known_clean=True)[0] == "go"  # ours, known not to have gone out
    assert ours.claim(job, "card", known_clean=False)[0] == "uncertain"  # ours, may have gone out: look first
    ours.record(job, "card", "1.000001", "C1", "1.000001")
    state, record = other.claim(job, "card", known_clean=False)
    assert state == "done" and "card" not in record.pending and record.card_ts == record.thread_ts == "1.000001"
    stale = SlackThread(job.task_id, pending={"final": {"owner": "dead-host", "at": time.time() - CLAIM_TTL - 1}})
    threads.update(job.task_id, lambda r: replace(r, pending=stale.pending))
    assert ours.claim(job, "final", known_clean=False)[0] == "uncertain"  # a dead owner's intent: look first
    ours.give_up(job, ["started"], "no way")
    assert ours.claim(job, "started", known_clean=False)[0] == "done"


def test_an_old_jobs_notify_map_seeds_its_record(threads):
    job = set_notify(make_job(channel="C1"), {"card_ts": "3.3", "card_channel": "C1", "posted": {"card": "3.3"},
                                               "retries": ["r1"]})
    ledger = Ledger(threads, "host-a")
    assert ledger.read(job).card_ts == "3.3"  # readable before anything is written
    assert ledger.claim(job, "card", known_clean=False)[0] == "done"
    stored, record = ledger.link_retry(job, "r2")
    assert stored and record.retries == ("r1", "r2") and record.card_ts == "3.3"
    assert ledger.link_retry(job, "r2") == (True, None)  # linked already: no change
