"""The README's layout section matches the tree: every path it names exists, and every package
and top-level module of ``orchestrator/``, ``bot/`` and ``worker/`` is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "bot", "worker")


def layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("Layout, by package")
    return text[start:text.index("\n## ", start)]


def named_paths(section: str) -> set[str]:
    """Backticked repository paths (``orchestrator/x.py``, ``bot/threads/``) in the section."""
    return {m for m in re.findall(r"`([\w/.]+)`", section) if m.split("/")[0] in PACKAGES and "/" in m}


def test_every_path_the_layout_names_exists():
    missing = sorted(path for path in named_paths(layout_section()) if not (ROOT / path).exists())
    assert missing == []


def test_every_package_and_top_level_module_is_named():
    section = layout_section()
    unnamed = []
    for package in PACKAGES:
        for entry in sorted((ROOT / package).iterdir()):
            if entry.name.startswith(("_", ".")) or not (entry.suffix == ".py" or (entry / "__init__.py").exists()):
                continue
            path = f"{package}/{entry.name}" + ("/" if entry.is_dir() else "")
            if path.rstrip("/") not in section and entry.name not in section:
                unnamed.append(path)
    assert unnamed == []


def test_the_check_sees_a_missing_path():
    assert named_paths("see `orchestrator/nowhere.py` and `bot/app.py`") == {"orchestrator/nowhere.py", "bot/app.py"}
    assert not (ROOT / "orchestrator/nowhere.py").exists()
