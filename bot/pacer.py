"""Slack's rate limits as a clock: when may the next post or card edit go out.

- chat.postMessage: about one message per second per channel (bursts get 429s).
- chat.update: Tier 3, about 50 a minute per workspace; a token bucket keeps us
  under it however many jobs share the workspace.
- A 429 names its own wait (Retry-After): that channel, or every edit, waits that long.

The pacer only answers "when"; the notifier decides what goes first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Per-channel post spacing, a workspace-wide edit budget, and 429 back-offs."""

    def __init__(self, post_interval: float = 1.1, updates_per_minute: float = 45, burst: int = 3,
                 clock: Callable[[], float] = time.monotonic):
        self.post_interval = post_interval
        self.rate = updates_per_minute / 60.0
        self.capacity = float(max(1, burst))
        self.clock = clock
        self._next_post: dict[str, float] = {}
        self._tokens = self.capacity
        self._refilled = clock()
        self._updates_blocked_until = 0.0
        self._guard = threading.Lock()

    # -- posts ----------------------------------------------------------------

    def post_ready_at(self, channel: str) -> float:
        return self._next_post.get(channel, 0.0)

    def posted(self, channel: str) -> None:
        with self._guard:
            now = self.clock()
            self._next_post[channel] = max(self._next_post.get(channel, 0.0), now + self.post_interval)

    def post_limited(self, channel: str, retry_after: float) -> None:
        """Slack said 429 for a post in ``channel``: nothing more there until Retry-After."""
        with self._guard:
            until = self.clock() + max(retry_after, self.post_interval)
            self._next_post[channel] = max(self._next_post.get(channel, 0.0), until)

    # -- card edits ---------------------------------------------------------------

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    def update_ready_at(self) -> float:
        with self._guard:
            now = self.clock()
            self._refill(now)
            # 0.0 when a token is there: "now" from here would already be later than the caller's now.
            ready = 0.0 if self._tokens >= 1 else now + (1 - self._tokens) / self.rate
            return max(ready, self._updates_blocked_until)

    def updated(self) -> None:
        with self._guard:
            self._refill(self.clock())
            self._tokens -= 1  # may go below zero after a burst; the refill pays it back

    def update_limited(self, retry_after: float) -> None:
        with self._guard:
            now = self.clock()
            self._updates_blocked_until = max(self._updates_blocked_until, now + max(retry_after, 1.0))
            self._refill(now)
            self._tokens = min(self._tokens, 0.0)
