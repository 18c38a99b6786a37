"""Shared test setup: every test gets its own LAXAI_HOME and offline W&B, and every Firestore
query a test causes is checked against firestore.indexes.json (tests/support/firestore_queries.py)."""

from __future__ import annotations

import pytest

from tests.support import firestore_queries, readme_proofs


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(firestore_queries):
        config.pluginmanager.register(firestore_queries, "laxai-firestore-queries")
    readme_proofs.register(config)  # a README-named test that failed or never ran fails `make test`


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads or writes the developer's ./.laxai, or talks to W&B."""
    monkeypatch.setenv("LAXAI_HOME", str(tmp_path / "laxai-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("LAXAI_API_TOKENS", raising=False)
    monkeypatch.delenv("LAXAI_BACKEND", raising=False)


# The longest files (a `make test` run's --durations, 2026-11-30), started first when the suite runs in
# several processes (pytest-xdist `--dist loadscope`: a file at a time per process, in this order), so
# the run does not end waiting on one of them. Each file's tests keep their order. A serial run keeps the
# files' order.
LONGEST_FIRST = (
    "tests/bench/test_bench_smoke.py",
    "tests/slack/test_slack_twenty.py",
    "tests/e2e/test_demo.py",
    "tests/worker/test_worker_runs.py",
    "tests/faults/test_item7_checks.py",
    "tests/slack/test_slack_e2e.py",
    "tests/e2e/test_local_service.py",
    "tests/faults/test_local_faults.py",
    "tests/slack/test_slack_two_services.py",
    "tests/gcp/test_cloudrun_continuation.py",
    "tests/deploy/test_fresh_project.py",
    "tests/gcp/test_one_laptop.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: every worker sorts alike
        items.sort(key=_rank)  # stable: the rest keep their order
