"""Every test the README's reliability table names exists, so the table cannot silently rot."""

from __future__ import annotations

import re

from orchestrator.config import REPO_ROOT

ALIASES = {"tf": "tests/faults/test_local_faults.py"}


def reliability_rows() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_every_row_names_at_least_one_test_and_each_exists():
    rows = reliability_rows()
    assert len(rows) >= 20
    for row in rows:
        proof = row.rsplit("|", 2)[-2]
        refs = re.findall(r"`([^`]+)`", proof)
        assert refs, f"row without a test: {row[:80]}"
        current = None
        for ref in refs:
            path, _, name = ref.partition("::")
            path = ALIASES.get(path, path)
            if path == "...":
                path = current
            assert path and path.startswith("tests/"), ref
            current = path
            source = (REPO_ROOT / path).read_text()
            if name:
                assert re.search(rf"^\s*def {re.escape(name)}\(", source, flags=re.M), f"{ref} not found in {path}"
