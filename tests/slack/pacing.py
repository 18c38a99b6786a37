"""A recorder of the app's Slack Web API calls, checked against Slack's *published* rate limits.

The fake Slack enforces limits of its own (tests/fakes/fake_slack.py), but a test
that only counts the fake's 429s, or restates the fake's numbers, passes for an app
that does not pace at all as long as the fake is lenient enough. The recorder takes
every call the fake saw (its timestamped ``call_log``) and checks them against what
Slack documents, whatever the fake enforces:

- chat.postMessage: about one message per second per channel, "short bursts >1
  allowed" (https://docs.slack.dev/apis/web-api/rate-limits, "Posting messages").
  Checked as a token bucket: 1 a second per channel, a burst of 2 (the least that
  ">1" grants; Slack promises no more).
- chat.update: Web API Tier 3, "50+ per minute" per method per workspace per app
  (same page, and the method's page https://docs.slack.dev/reference/methods/chat.update).
  Checked as: no 60-second window holds more than 50 edits (the floor Slack guarantees).
- no 429 on either method, other than the ones a test injected on purpose: a 429 the
  fake chose itself means the app went faster than the fake lets it, and on real
  Slack repeated 429s put the app's token at risk.

Every request counts, whatever its answer: Slack meters requests, and a 500 may have posted.

Tests that compress time (Slack's pace scaled up so the test is quick) say so with
``Limits.faster_posts(factor)``; the burst and the update budget stay Slack's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace

from tests.fakes.fake_slack import Call, FakeSlack

# https://docs.slack.dev/apis/web-api/rate-limits: "Posting messages | 1 per second | Short bursts >1 allowed"
POSTS_PER_SECOND_PER_CHANNEL = 1.0
POST_BURST = 2
# https://docs.slack.dev/apis/web-api/rate-limits: "Web API Tier 3 | 50+ per minute"; chat.update is Tier 3.
UPDATES_PER_MINUTE = 50
MINUTE = 60.0
PACED = ("chat.postMessage", "chat.update")
JITTER = 0.02  # seconds: the fake timestamps on arrival, a thread switch after the app sent it


@dataclass(frozen=True)
class Limits:
    """What Slack publishes (the defaults); a test may only speed up posts, and says so."""

    posts_per_second: float = POSTS_PER_SECOND_PER_CHANNEL
    post_burst: int = POST_BURST
    updates_per_minute: int = UPDATES_PER_MINUTE

    def faster_posts(self, factor: float) -> Limits:
        return replace(self, posts_per_second=self.posts_per_second * factor)


PUBLISHED = Limits()


def post_violations(calls: list[Call], limits: Limits = PUBLISHED) -> list[str]:
    """chat.postMessage calls beyond ``posts_per_second`` per channel with ``post_burst``, as a token bucket."""
    by_channel: dict[str | None, list[Call]] = defaultdict(list)
    for call in calls:
        if call.method == "chat.postMessage":
            by_channel[call.channel].append(call)
    found = []
    for channel, posts in by_channel.items():
        tokens, last = float(limits.post_burst), None
        for call in sorted(posts, key=lambda c: c.mono):
            if last is not None:
                tokens = min(float(limits.post_burst), tokens + (call.mono - last + JITTER) * limits.posts_per_second)
            last = call.mono
            if tokens < 1.0:
                found.append(f"chat.postMessage in {channel} at +{call.mono - posts[0].mono:.2f}s: faster than "
                             f"{limits.posts_per_second:g}/s with a burst of {limits.post_burst}")
            tokens = max(0.0, tokens - 1.0)
    return found


def update_violations(calls: list[Call], limits: Limits = PUBLISHED) -> list[str]:
    """60-second windows holding more than ``updates_per_minute`` chat.update calls (the workspace's budget)."""
    times = sorted(c.mono for c in calls if c.method == "chat.update")
    found = []
    end = 0
    for start, at in enumerate(times):
        end = max(end, start)
        while end + 1 < len(times) and times[end + 1] - at < MINUTE:
            end += 1
        held = end - start + 1
        if held > limits.updates_per_minute:
            found.append(f"{held} chat.update calls in the minute from +{at - times[0]:.1f}s "
                         f"(Tier 3: {limits.updates_per_minute} a minute)")
    return found


def rate_limited(calls: list[Call]) -> list[str]:
    """429s on paced methods that no test injected: the app outran the limit."""
    return [f"{c.method} in {c.channel}: 429 {c.error}" for c in calls
            if c.method in PACED and c.status == 429 and not c.injected]


class Recorder:
    """The calls one fake Slack sees from now on, and the published-limit checks on them."""

    def __init__(self, fake: FakeSlack, limits: Limits = PUBLISHED):
        self.fake, self.limits = fake, limits
        self.since = time.monotonic()  # the fake stamps calls with the same clock

    def calls(self, *methods: str) -> list[Call]:
        return [c for c in self.fake.call_log(self.since) if not methods or c.method in methods]

    def checks(self) -> dict[str, list[str]]:
        calls = self.calls(*PACED)
        return {"posts per channel": post_violations(calls, self.limits),
                "chat.update per minute": update_violations(calls, self.limits),
                "429 answers": rate_limited(calls)}

    def violations(self) -> list[str]:
        return [problem for found in self.checks().values() for problem in found]

    def assert_paced(self, at_least_posts: int = 1) -> None:
        """Within Slack's published limits, and 0 x 429; ``at_least_posts``: the premise (calls were made)."""
        posts = self.calls("chat.postMessage")
        assert len(posts) >= at_least_posts, f"only {len(posts)} chat.postMessage calls were made"
        broken = {name: found for name, found in self.checks().items() if found}
        assert not broken, "Slack's published rate limits broken:\n" + "\n".join(
            f"- {name}: {len(found)}, e.g. " + "; ".join(found[:3]) for name, found in broken.items())
