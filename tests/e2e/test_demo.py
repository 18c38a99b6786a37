"""`make demo` as it is: `laxai demo` with its defaults (orchestrator/cli/demo.py) learns to find the shapes.

Its own file (not tests/e2e/test_local_service.py's) because it is one of the suite's longest tests:
`make test` hands out files to its processes, and this one should not queue behind the rest of that file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import demo
from tests.support.serve import LAXAI, kill_workers

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_laxai_demo_learns_to_map50_over_0_9_and_ends_with_metrics_registry_and_cost(tmp_path):
    # `make demo` as it is (its defaults, orchestrator/cli/demo.py): the one real demo run of the suite.
    env = {"LAXAI_HOME": str(tmp_path / "demo"), "WANDB_MODE": "offline", "PATH": str(Path(sys.executable).parent),
           "COLUMNS": "200"}
    result = subprocess.run([LAXAI, "demo"], env=env, capture_output=True, text=True, timeout=840)
    out = result.stdout
    kill_workers(tmp_path / "demo")
    assert result.returncode == 0, out + result.stderr
    for words in ("completed", "mAP50-95", "Registry", "demo v1", "Checkpoint", "Cost", "on nvidia-l4 it would cost"):
        assert words in out, (words, out)
    epochs = [int(n) for n in re.findall(rf"^epoch +(\d+)/{demo.EPOCHS} +mAP50 ", out, re.MULTILINE)]
    assert epochs == list(range(1, demo.EPOCHS + 1)), out  # one line per epoch, each once, as it finished
    learned = re.search(r"^Learned: mAP50 ([\d.]+) -> ([\d.]+), mAP50-95 [\d.]+ -> ([\d.]+)", out, re.MULTILINE)
    assert learned, out
    first, final, final_95 = (float(v) for v in learned.groups())
    assert first < 0.1 and final >= demo.TARGET_MAP50 and final_95 > 0.3, out  # from nothing to finding the shapes
    assert f"mAP50 {final:.3f}" in re.search(r"^Metrics .*$", out, re.MULTILINE).group(0)
