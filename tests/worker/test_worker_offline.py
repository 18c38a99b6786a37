"""worker.offline: Ultralytics is configured from LAXAI_HOME with nothing left that would download.

Runs in a subprocess: Ultralytics reads its switches once, at import.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from pathlib import Path
from worker import offline

home = Path(sys.argv[1])
offline.prepare(home)
import torch, ultralytics
offline.configure_ultralytics(home)
offline.configure_ultralytics(home)  # idempotent
import ultralytics.engine.trainer as trainer
from ultralytics.utils import ONLINE, SETTINGS, USER_CONFIG_DIR
from ultralytics.utils.checks import check_font

model = torch.nn.Conv2d(3, 8, 3)  # any module on the CPU
print(json.dumps({
    "online": ONLINE,
    "config_dir": str(USER_CONFIG_DIR),
    "font": str(check_font("Arial.ttf")),
    "integrations": {k: SETTINGS[k] for k in offline.DISABLED_INTEGRATIONS},
    "sync": SETTINGS["sync"],
    "runs_dir": SETTINGS["runs_dir"],
    "amp_patched": getattr(trainer.check_amp, "_laxai_offline", False),
    "amp_on_cpu": trainer.check_amp(model),
}))
"""


def test_ultralytics_is_offline_and_owned_by_laxai_home(tmp_path):
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-c", PROBE, str(home)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    config = home / "ultralytics" / "Ultralytics"
    assert probe["online"] is False
    assert probe["config_dir"] == str(config)
    assert probe["font"] == str(config / "Arial.ttf")  # found locally, never downloaded
    assert (config / "Arial.Unicode.ttf").stat().st_size > 100_000
    assert not any(probe["integrations"].values()) and probe["sync"] is False
    assert probe["runs_dir"] == str(home / "runs")
    assert probe["amp_patched"] is True and probe["amp_on_cpu"] is False
    assert json.loads((config / "settings.json").read_text())["wandb"] is False
