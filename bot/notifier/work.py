"""What a job could have done next, and when: the candidates the notifier's loop picks from, and the pick.

Pure given the pacer's answers: a ``Work`` item per owed thing (a retry link, the
first owed message in thread order, a card edit), each with the time it may go
(the channel's post pace or the workspace's edit budget, a failure's back-off, the
card's least interval between edits) and its rank (priority, then age).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot import plan
from bot.notifier.state import Track
from bot.pacer import Pacer


@dataclass(frozen=True)
class Work:
    kind: str  # post | update | link
    key: str
    priority: int
    since: float


def candidates(track: Track, now: float, pacer: Pacer, card_interval: float) -> tuple[Track, list[tuple[float, Work]]]:
    """(track with its waiting times noted, [(ready time, work)]) for what this job could do next."""
    job = track.job
    found: list[tuple[float, Work]] = []
    if job.retry_of and not track.linked:
        found.append((now, Work("link", "link", plan.LIFECYCLE, now)))
    steps = track.due()
    if steps:
        step = steps[0]  # thread order: only the first owed message may go
        track = track.ready(step.key, now)
        failure = track.failures.get(step.key)
        ready = max(pacer.post_ready_at(track.channel()), failure.next_at if failure else 0.0)
        found.append((ready, Work("post", step.key, step.priority, track.ready_since[step.key])))
    if track.card_ts() and not track.card_current():
        track = track.dirty(now)
        failure = track.failures.get("update")
        ready = max(track.card.last_update_at + card_interval, pacer.update_ready_at(),
                    failure.next_at if failure else 0.0)
        # A finished job's last card edit matters as much as lifecycle news.
        priority = plan.LIFECYCLE if job.status.is_terminal() else plan.UPDATE
        found.append((ready, Work("update", "card", priority, float(track.card.dirty_since or now))))
    return track, found


def pick(tracks: dict[str, Track], due: dict[str, float], now: float, pacer: Pacer,
         card_interval: float) -> tuple[Track | None, Work | None, float, list[Track]]:
    """(track, its most urgent work that may run now, else (None, None, seconds to wait), finished
    jobs' tracks dropped). Looks only at the tracks ``due`` (the notifier's loop: when each may
    next have work; 0 changed, inf nothing until it changes) and notes each one's next time there."""
    best: tuple[tuple[int, float], Track, Work] | None = None
    wake, ended = now + 5.0, []
    for task_id, when in list(due.items()):
        if when > now:
            wake = min(wake, when)
            continue
        track = tracks.get(task_id)
        if track is None:
            del due[task_id]
            continue
        if track.finished():
            if track.job.status.is_terminal():  # a live job keeps its track: what Slack shows matters later
                del tracks[task_id], due[task_id]
                ended.append(track)
            else:
                due[task_id] = math.inf
            continue
        track, found = candidates(track, now, pacer, card_interval)
        tracks[task_id] = track  # its waiting times noted: no change to look at again
        due[task_id] = min((ready for ready, _ in found), default=math.inf)
        for ready, work in found:
            if ready > now:
                wake = min(wake, ready)
            elif best is None or (work.priority, work.since) < best[0]:
                best = ((work.priority, work.since), track, work)
    if best is None:
        return None, None, max(0.01, wake - now), ended
    return best[1], best[2], 0.0, ended
