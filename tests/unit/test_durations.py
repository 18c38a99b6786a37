"""One duration helper for the CLI's tables and the Slack cards (orchestrator/domain/durations.py)."""

from __future__ import annotations

import pytest

from bot import blocks
from orchestrator.cli import views as cli_views
from orchestrator.domain.durations import duration


@pytest.mark.parametrize("seconds, card, table", [
    (None, "?", "-"),
    (0, "0s", "0s"),
    (41.6, "42s", "42s"),
    (63, "1m 03s", "1m03s"),
    (3723, "1h 02m", "1h02m03s"),
    (-5, "0s", "0s"),  # a clock step backwards reads as nothing, not as "-1h59m55s"
])
def test_cards_and_tables_word_durations_from_the_one_helper(seconds, card, table):
    assert duration(seconds) == blocks.duration(seconds) == card
    assert duration(seconds, unknown="-", compact=True) == cli_views.duration(seconds) == table
