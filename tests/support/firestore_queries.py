"""Pytest plugin: every Firestore query the tests cause must be one production Firestore can run.

The emulator runs any query without an index; production refuses one its indexes
cannot serve. While the tests run, ``firestore_query_log`` records the shape of
every query sent, in this process and in every Python process the tests start
(``sitecustomize`` on ``PYTHONPATH``), into one file for the session. After each
test the shapes recorded since it began are checked against ``firestore.indexes.json``
(``tests/firestore_index_rules.py``): a test that issued a query needing an index
the file does not declare fails at teardown, naming the query, the code that sent
it and the index to add. A query sent between two tests (a module fixture, a
process still winding down) fails the next test, saying so; one sent after the
last test fails the session. Queries whose code lives in tests/ or bench/ (looking
at the database directly) do not ship and are not checked.

``LAXAI_FIRESTORE_INDEXES`` points the check at another index file (the tests of
the check itself use it). tests/conftest.py registers this plugin.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.firestore_index_rules import IndexFile, Shape, problems

SITE = Path(__file__).resolve().parent / "firestore_site"
REPO = Path(__file__).resolve().parents[2]
INDEX_ENV = "LAXAI_FIRESTORE_INDEXES"
NOT_SHIPPED = ("tests/", "bench/")

if str(SITE) not in sys.path:
    sys.path.append(str(SITE))
import firestore_query_log  # noqa: E402 - lives beside sitecustomize, which imports it by this name

LOG_ENV = firestore_query_log.ENV


def index_path() -> Path:
    return Path(os.environ.get(INDEX_ENV) or REPO / "firestore.indexes.json")


def read_shapes(log: Path, offset: int = 0) -> tuple[list[Shape], int]:
    """Shapes recorded in ``log`` from byte ``offset`` on (whole lines only), and the offset after them."""
    try:
        with open(log, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    complete = data[:data.rfind(b"\n") + 1]
    shapes = [Shape.from_json(json.loads(line)) for line in complete.splitlines() if line.strip()]
    return shapes, offset + len(complete)


def check(shapes: list[Shape], path: Path | None = None) -> list[str]:
    """What production Firestore would refuse among ``shapes``, against the index file at ``path``.
    Queries that tests and benchmarks send themselves (to look at the database) do not ship: skipped."""
    path = path or index_path()
    shipped = [s for s in shapes if not s.site.startswith(NOT_SHIPPED)]
    return problems(shipped, IndexFile.load(path), path.name) if shipped else []


class Recorder:
    """The session's query log and how far each test has read it."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="laxai-firestore-queries-", suffix=".jsonl")
        os.close(handle)
        self.log = Path(name)
        self.offset = 0
        self._saved = {k: os.environ.get(k) for k in (LOG_ENV, "PYTHONPATH")}
        os.environ[LOG_ENV] = str(self.log)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p)
        firestore_query_log.install()

    def take(self) -> list[str]:
        """Problems among the shapes recorded since the last call."""
        shapes, self.offset = read_shapes(self.log, self.offset)
        return check(shapes)

    def close(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.log.unlink(missing_ok=True)


_recorder: Recorder | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _recorder
    if _recorder is None:
        _recorder = Recorder()


@pytest.fixture(autouse=True)
def _firestore_queries_indexed():
    """Fails the test at teardown when it caused a query the index file cannot serve."""
    early = _recorder.take() if _recorder is not None else []
    yield
    found = [f"{m} (sent before this test began: by a wider fixture, or a process an earlier test started)"
             for m in early] + (_recorder.take() if _recorder is not None else [])
    if found:
        pytest.fail("\n".join(found), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _recorder
    if _recorder is None:
        return
    found = _recorder.take()  # sent after the last test's teardown
    _recorder.close()
    _recorder = None
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for message in found:
            (reporter.write_line if reporter else print)(f"firestore index check: {message}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
