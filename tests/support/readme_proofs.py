"""The README's reliability table, checked against what actually ran: a pytest plugin.

Each row of README.md's "## Reliability" table names the tests that prove it. This plugin
records every test's outcome and, at the end of a session that ran the whole suite (``make
test``: no paths below ``tests/``, no ``-k``, ``-m``, ``--collect-only`` or deselection, not stopped
early), fails the run when a named test failed, was skipped, or was not collected at all, naming
the row and the test. Partial runs (one file, ``-k``...) say nothing: they cannot know.

``LAXAI_README`` points the check at another README (a copy with rows about to be pasted in).
A reference is ``path`` (every test in the file) or ``path::name`` (that function, every
parametrization and class it appears under); ``tf`` and ``...`` abbreviate as the table says.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ALIASES = {"tf": "tests/faults/test_local_faults.py"}
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Proof:
    """One test a row names."""

    row: str  # the row's first cell (the fault)
    path: str  # tests/...py
    name: str | None  # the test function, None for the whole file

    def covers(self, nodeid: str) -> bool:
        path, _, rest = nodeid.partition("::")
        if path != self.path:
            return False
        return self.name is None or re.sub(r"\[.*\]$", "", rest).split("::")[-1] == self.name

    def __str__(self) -> str:
        return f"{self.path}::{self.name}" if self.name else self.path


def readme_path() -> Path:
    return Path(os.environ.get("LAXAI_README") or REPO_ROOT / "README.md")


def reliability_rows(readme: Path | None = None) -> list[str]:
    """The table's rows (header and rule left out)."""
    readme = readme or readme_path()
    found = re.search(r"^## Reliability\n(.*?)(?=^## |\Z)", readme.read_text(), flags=re.M | re.S)
    if found is None:
        raise ValueError(f"{readme} has no '## Reliability' section")
    section = found.group(1)
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def proofs(readme: Path | None = None) -> list[Proof]:
    """Every test every row names, in table order."""
    found = []
    for row in reliability_rows(readme):
        fault = row.split("|")[1].strip()
        current = None
        for ref in re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2]):
            path, _, name = ref.partition("::")
            path = current if path == "..." else ALIASES.get(path, path)
            current = path
            found.append(Proof(fault, path, name or None))
    return found


@dataclass
class Outcomes:
    """What happened to each test id: passed, failed (any phase) or skipped."""

    seen: dict[str, str] = field(default_factory=dict)

    def record(self, nodeid: str, outcome: str) -> None:
        before = self.seen.get(nodeid)
        if before == FAILED or (before == SKIPPED and outcome == PASSED):
            return  # a failure or skip in one phase is not undone by another phase passing
        self.seen[nodeid] = outcome


def problems(named: list[Proof], outcomes: dict[str, str]) -> list[str]:
    """One line per proof that did not pass: which row, which test, what happened."""
    lines = []
    for proof in named:
        ran = {nodeid: outcome for nodeid, outcome in outcomes.items() if proof.covers(nodeid)}
        if not ran:
            what = "was not collected (renamed or removed?)"
        elif FAILED in ran.values():
            what = f"failed ({', '.join(n for n, o in ran.items() if o == FAILED)})"
        elif SKIPPED in ran.values():
            what = f"was skipped ({', '.join(n for n, o in ran.items() if o == SKIPPED)})"
        else:
            continue
        lines.append(f'README reliability row "{proof.row}": {proof} {what}')
    return lines


def whole_suite(config: pytest.Config, deselected: int, stopped: bool) -> bool:
    """Did this session collect every test (so a named test that did not run is a finding)?"""
    if stopped or deselected or config.option.keyword or config.option.markexpr or config.option.collectonly:
        return False
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        return True
    root = Path(config.rootpath)
    suites = {root, *(root / p for p in config.getini("testpaths"))}
    return all("::" not in arg and Path(arg).resolve() in suites for arg in config.args)


class ReadmeProofs:
    """The plugin: records outcomes, then judges the table once the session ends."""

    def __init__(self) -> None:
        self.outcomes = Outcomes()
        self.deselected = 0
        self.found: list[str] = []

    def pytest_deselected(self, items: list) -> None:
        self.deselected += len(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = FAILED if report.failed else SKIPPED if report.skipped else PASSED
        if report.when == "call" or outcome != PASSED:
            self.outcomes.record(report.nodeid, outcome)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.deselected += 1  # a file that did not import: its tests were not collected

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # a pytest-xdist worker saw only its share; the controller judges the whole run
        stopped = bool(session.shouldstop or session.shouldfail)
        if not whole_suite(session.config, self.deselected, stopped):
            return
        self.found = problems(proofs(), self.outcomes.seen)
        if self.found and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001 - pytest's TerminalReporter
        if self.found:
            terminalreporter.section("README reliability table", red=True)
            for line in self.found:
                terminalreporter.write_line(line)


def register(config: pytest.Config) -> None:
    """Register the plugin once (from tests/conftest.py's pytest_configure)."""
    if not config.pluginmanager.has_plugin("laxai-readme-proofs"):
        config.pluginmanager.register(ReadmeProofs(), "laxai-readme-proofs")
