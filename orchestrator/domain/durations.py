"""How long something took, as people read it: one helper for the CLI and the Slack cards."""

from __future__ import annotations


def duration(seconds: float | None, *, unknown: str = "?", compact: bool = False) -> str:
    """``42s``, ``5m 03s``, ``2h 07m`` (minutes are enough past an hour); ``compact`` (the CLI's
    tables): ``5m03s``, ``2h07m03s``. ``unknown`` when there is no figure; below 0 counts as 0."""
    if seconds is None:
        return unknown
    hours, rest = divmod(max(0, int(round(seconds))), 3600)
    minutes, secs = divmod(rest, 60)
    if compact:
        return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
