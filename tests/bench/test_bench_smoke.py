"""Smoke test of the benchmarks: ``python -m bench --quick --only ITEM`` runs each item at tiny sizes.

One test per item, so `make test`'s processes share them out (the items run one after another in
``make bench``). It asserts the shape of what comes out (every item has a row with numbers and a
target, in the printed table and in BENCHMARKS.md), never a time: benchmarks
are measurements, and this machine's timings are noisy.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.items import ITEMS

pytestmark = [pytest.mark.slow, pytest.mark.gcp]

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"\d")


def run_in_own_group(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run the bench; on a timeout interrupt it (SIGINT: its ``with`` blocks stop the `laxai serve` and
    emulators it started, which run in sessions of their own and would outlive a kill), then kill its group."""
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        pytest.fail(f"bench did not finish in {timeout:.0f} s: {stdout[-2000:]}{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("number,item", list(enumerate(ITEMS, 1)), ids=[item.key for item in ITEMS])
def test_quick_run_prints_and_writes_the_row_of_each_item(number, item, tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAXAI_", "SLACK_"))}
    done = run_in_own_group([sys.executable, "-m", "bench", "--quick", "--only", item.key, "--out", str(out)],
                            env=env, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    table, text = done.stdout, out.read_text()

    for heading in ("## Machine", "## Results", "## Items", "| CPU |", "| cores |", "| RAM |", "| Python |",
                    "| torch |", "| ultralytics |"):
        assert heading in text, heading
    rows = {cells[0]: cells for cells in (
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
        if re.match(r"\| \d+ \|", line))}
    assert list(rows) == [str(number)], rows
    assert re.search(r"^#\s+\|\s+Item\s+\|\s+Measured\s+\|\s+Target\s+\|\s+Met", table, re.M), table
    printed = re.search(rf"^{number}\s+\|(.*)$", table, re.M)  # long cells wrap onto more lines
    assert printed, (number, table)
    p_title, p_measured, p_target, p_verdict = (c.strip() for c in printed.group(1).split("|"))
    assert item.title.startswith(p_title) and item.target.startswith(p_target), printed.group(0)
    assert p_verdict in {"met", "MISSED", "not run"}, printed.group(0)
    assert NUMBER.search(p_measured) or (item.key == "gpu" and p_verdict == "not run"), printed.group(0)
    _, title, measured, target, verdict = rows[str(number)]
    assert title == item.title and target == item.target
    assert f"### {number}. {item.title}" in text
    if item.key == "gpu" and verdict == "not run":  # no GPU here: the row says so, and why
        assert "no CUDA GPU" in measured
        return
    assert verdict in {"met", "MISSED"}, rows
    assert NUMBER.search(measured), rows
