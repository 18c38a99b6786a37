"""Smoke test of the benchmarks: ``python -m bench --quick`` runs every item at tiny sizes.

It asserts the shape of what comes out (every item has a row with numbers and a
target, in the printed table and in BENCHMARKS.md), never a time: benchmarks
are measurements, and this machine's timings are noisy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.items import ITEMS

pytestmark = [pytest.mark.slow, pytest.mark.gcp]

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"\d")


def test_quick_run_prints_and_writes_a_row_per_item(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAXAI_", "SLACK_"))}
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    table, text = done.stdout, out.read_text()

    for heading in ("## Machine", "## Results", "## Items", "| CPU |", "| cores |", "| RAM |", "| Python |",
                    "| torch |", "| ultralytics |"):
        assert heading in text, heading
    rows = {cells[0]: cells for cells in (
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
        if re.match(r"\| \d+ \|", line))}
    assert re.search(r"^#\s+\|\s+Item\s+\|\s+Measured\s+\|\s+Target\s+\|\s+Met", table, re.M), table
    for number, item in enumerate(ITEMS, 1):
        printed = re.search(rf"^{number}\s+\|(.*)$", table, re.M)  # long cells wrap onto more lines
        assert printed, (number, table)
        p_title, p_measured, p_target, p_verdict = (c.strip() for c in printed.group(1).split("|"))
        assert item.title.startswith(p_title) and item.target.startswith(p_target), printed.group(0)
        assert p_verdict in {"met", "MISSED", "not run"}, printed.group(0)
        assert NUMBER.search(p_measured) or (item.key == "gpu" and p_verdict == "not run"), printed.group(0)
        cells = rows[str(number)]
        _, title, measured, target, verdict = cells
        assert title == item.title and target == item.target
        assert verdict in {"met", "MISSED", "not run"}, cells
        if item.key == "gpu" and verdict == "not run":  # no GPU here: the row says so, and why
            assert "no CUDA GPU" in measured
            continue
        assert verdict in {"met", "MISSED"}, cells
        assert NUMBER.search(measured), cells
        assert f"### {number}. {item.title}" in text
