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
