"""One piece of the notifier's work for one job: post a message, edit the card, link a retry.

Each step joins the ledger (bot/ledger.py: claim, record, give up, on the job's
``slack_threads`` record) and the poster (bot/notifier/poster.py: Slack calls and
what their failures mean), and hands what it learned back to the loop through
``amend`` (a new ``Track`` replaces the old one under the loop's lock).

Exactly once, as far as Slack allows: before a post its intent is claimed by
compare-and-set; after it, its ts is recorded. A post that may or may not have
gone out leaves its intent behind, and the next try looks for the message in
Slack by its metadata first. Slack failures are retried with back-off; a final
reply for ``SLACK_FINAL_GIVE_UP`` seconds, other replies for ``SLACK_REPLY_GIVE_UP``,
then given up with an error log. They never touch the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from orchestrator.curves import job_png

from bot import curves, plan
from bot.config import SlackSettings
from bot.ledger import Ledger
from bot.notifier import uploads
from bot.notifier.poster import Outcome, SlackPoster, lookup_hopeless
from bot.notifier.state import Track
from bot.threads.base import SlackThread

log = logging.getLogger("bot.notifier")

Amend = Callable[[str, Callable[[Track], Track]], "Track | None"]


class Steps:
    """Posting, editing and linking for the loop; ``amend(task_id, fn)`` updates a live track."""

    def __init__(self, ledger: Ledger, poster: SlackPoster, settings: SlackSettings, default_gpu: str,
                 clock: Callable[[], float], amend: Amend):
        self.ledger, self.poster, self.settings = ledger, poster, settings
        self.default_gpu, self.clock, self.amend = default_gpu, clock, amend

    def merge(self, task_id: str, record: SlackThread | None) -> Track | None:
        """A newer ledger record for a live track."""
        if record is None:
            return None
        return self.amend(task_id, lambda t: t.seen(t.job, record, self.default_gpu))

    # -- posts -----------------------------------------------------------------

    def post(self, track: Track, key: str) -> None:
        task_id, channel, thread = track.job.task_id, track.channel(), track.thread_for(key)
        if key != "card" and not thread:
            self.failed(task_id, key, delay=1.0)  # the card comes first (plan.due orders it so); wait for it
            return
        if key == "approval_closed":
            self.close_request(track)
            return
        state, record = self.ledger.claim(track.job, key, known_clean=key in track.clean_pending)
        track = self.merge(task_id, record) or track  # the claim may have brought a newer record
        if state == "done":
            self.amend(task_id, lambda t: t.cleared(key) if key in t.thread.settled() else t.given_up([key]))
            return
        if state == "busy":
            self.failed(task_id, key, delay=5.0)
            return
        if state == "uncertain" and self._found_earlier(track, key, channel, thread):
            return
        message = plan.render(track.job, key, track.best_map, self.default_gpu)
        if key == curves.KEY:
            outcome = self.upload_curves(track, channel, thread, message.text)
        else:
            outcome = self.poster.post(channel, thread, message, task_id, key, plain=key in track.plain)
        if outcome.ok:
            self._posted(track, key, str(outcome.ts), channel)
        elif outcome.kind == "refused":  # can never work here (bot/notifier/uploads.py): no retries
            self.give_up(track, key, f"Slack refused it ({outcome.error})")
        else:
            self._post_failed(track, key, outcome, channel)

    def upload_curves(self, track: Track, channel: str, thread: str | None, caption: str) -> Outcome:
        """The job's training curves, drawn now, as a PNG shared in its thread (bot/notifier/uploads.py)."""
        job = track.job
        try:
            png = job_png(job)
        except Exception as exc:  # noqa: BLE001 - a picture that can't be drawn is given up, never retried
            log.exception("Slack notifier: drawing the curves of %s failed", job.task_id)
            return Outcome("refused", error=f"could not draw the curves: {type(exc).__name__}: {exc}")
        self.poster.sent += 3  # the three calls of the upload flow
        item = uploads.Upload(channel, thread, png, curves.filename(job.task_id), curves.title(job), caption,
                              curves.alt_text(job))
        return uploads.upload(self.poster.client, self.poster.pacer, item)

    def _found_earlier(self, track: Track, key: str, channel: str, thread: str | None) -> bool:
        """An earlier try may have posted ``key``: True when that is settled (found, or given up)."""
        task_id = track.job.task_id
        try:
            since = float((track.thread.pending.get(key) or {}).get("at", self.clock()))
            found = self.poster.find(channel, thread, task_id, key, since)
        except Exception as exc:  # noqa: BLE001 - lookups can fail like posts do
            if not lookup_hopeless(exc):
                log.warning("Slack notifier: looking for an earlier %s of %s failed: %s", key, task_id, exc)
                self.failed(task_id, key)
                return True
            if key in ("final", "card"):
                return False  # no way to know: a final word is worth the risk of a double
            self.give_up(track, key, f"could not check Slack for an earlier post ({exc})")
            return True
        if not found:
            return False
        log.info("Slack notifier: %s for %s was already posted (ts %s); recording it", key, task_id, found)
        self.record(track, key, found, channel)
        if key == "card":
            self.amend(task_id, lambda t: t.pushed(None))  # unknown content: edit it to the current state
        return True

    def _posted(self, track: Track, key: str, ts: str, channel: str) -> None:
        if key == "card":
            self.amend(track.job.task_id, lambda t: t.pushed(track.digest, self.clock()))
        self.record(track, key, ts, channel)
        if key == "card" and track.job.status.is_terminal():
            self.card_done(track.job.task_id)
        log.info("Slack notifier: posted %s for job %s in %s", key, track.job.task_id, channel)

    def _post_failed(self, track: Track, key: str, outcome: Outcome, channel: str) -> None:
        task_id = track.job.task_id
        if outcome.kind == "rate_limited":
            now = self.clock()
            limited = self.amend(task_id, lambda t: t.limited(key, now))
            log.info("Slack notifier: rate limited in %s; waiting %.0fs", channel, outcome.wait)
            self.check_bound(limited, key, f"rate limited ({outcome.error})")
            return
        if outcome.kind != "maybe_sent":
            self.amend(task_id, lambda t: replace(t, clean_pending=t.clean_pending | {key}))
        if outcome.kind == "blocks" and key not in track.plain:
            self.amend(task_id, lambda t: replace(t, plain=t.plain | {key}))
            log.error("Slack notifier: Slack refused the %s message for %s (%s); sending text only", key, task_id,
                      outcome.error)
            return
        log.warning("Slack notifier: posting %s for %s failed (%s): %s", key, task_id,
                    "may have been sent" if outcome.kind == "maybe_sent" else "not sent", outcome.error)
        self.failed(task_id, key)

    def close_request(self, track: Track) -> None:
        """Edit the posted approval request to its decided form, without buttons (bot/approval.py).
        An edit is safe to repeat, so it takes no claim; it is recorded as ``approval_closed``."""
        task_id, channel = track.job.task_id, track.channel()
        ts = str(track.thread.posted.get("approval") or "")
        message = plan.render(track.job, "approval_closed", track.best_map, self.default_gpu)
        outcome = self.poster.update(channel, ts, message, plain="approval" in track.plain)
        if outcome.ok or outcome.kind == "gone":  # gone: deleted in Slack, nothing left to close
            self.record(track, "approval_closed", ts, channel)
            return
        log.warning("Slack notifier: closing the approval request of %s failed: %s", task_id, outcome.error)
        self.failed(task_id, "approval_closed", delay=outcome.wait or None)

    # -- the card ----------------------------------------------------------------

    def update(self, track: Track) -> None:
        task_id = track.job.task_id
        message = plan.render(track.job, "card", track.best_map, self.default_gpu)
        outcome = self.poster.update(track.channel(), str(track.card_ts()), message, plain="card" in track.plain)
        if outcome.ok:
            self.amend(task_id, lambda t: t.cleared("update").pushed(track.digest, self.clock()))
            if track.job.status.is_terminal():
                self.card_done(task_id)
        elif outcome.kind == "rate_limited":
            log.info("Slack notifier: chat.update rate limited; waiting %.0fs", outcome.wait)
        elif outcome.kind == "gone":
            log.warning("Slack notifier: the card of %s can't be edited (%s); leaving it", task_id, outcome.error)
            self.amend(task_id, lambda t: t.pushed(track.digest))
        elif outcome.kind == "blocks" and "card" not in track.plain:
            self.amend(task_id, lambda t: replace(t, plain=t.plain | {"card"}))
            log.error("Slack notifier: Slack refused the card of %s (%s); sending text only", task_id, outcome.error)
        else:
            log.warning("Slack notifier: editing the card of %s failed: %s", task_id, outcome.error)
            self.failed(task_id, "update")

    def card_done(self, task_id: str) -> None:
        track = self.amend(task_id, lambda t: t)
        if track is not None and track.card.pushed and track.job.status.is_terminal():
            self.merge(task_id, self.ledger.card_done(track.job, track.card.pushed))

    # -- the ledger ----------------------------------------------------------------

    def record(self, track: Track, key: str, ts: str, channel: str) -> None:
        task_id = track.job.task_id
        self.amend(task_id, lambda t: t.posted(key, ts))  # even if the store write fails, no second post here
        record = self.ledger.record(track.job, key, ts, channel, track.job.origin.thread_ts or ts)
        if record is None and key not in track.thread.settled():
            log.error("Slack notifier: posted %s for %s (ts %s) but could not record it; a restart will find "
                      "it by its metadata", key, task_id, ts)
        self.merge(task_id, record)

    def give_up(self, track: Track, key: str, why: str) -> None:
        log.error("Slack notifier: giving up on %s for job %s in %s: %s", key, track.job.task_id,
                  track.job.origin.channel, why)
        # Without a card there is no thread: everything owed goes with it.
        keys = [key] if key != "card" else [key, *[s.key for s in plan.due(track.job)]]
        self.amend(track.job.task_id, lambda t: t.given_up(keys))
        self.merge(track.job.task_id, self.ledger.give_up(track.job, keys, why))

    def failed(self, task_id: str, key: str, delay: float | None = None) -> None:
        now = self.clock()
        track = self.amend(task_id, lambda t: t.failed(key, now, delay))
        if key != "update" and track is not None:
            self.check_bound(track, key, f"{track.failures[key].attempts} failed tries")

    def check_bound(self, track: Track | None, key: str, why: str) -> None:
        failure = track.failures.get(key) if track is not None else None
        if failure is None:
            return
        bound = self.settings.SLACK_FINAL_GIVE_UP if key in ("final", "card") else self.settings.SLACK_REPLY_GIVE_UP
        if self.clock() - failure.first_at > bound:
            self.give_up(track, key, f"{why} over {bound:.0f}s")
