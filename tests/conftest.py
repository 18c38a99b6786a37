"""Shared test setup: every test gets its own LAXAI_HOME and offline W&B."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads or writes the developer's ./.laxai, or talks to W&B."""
    monkeypatch.setenv("LAXAI_HOME", str(tmp_path / "laxai-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("LAXAI_API_TOKENS", raising=False)
    monkeypatch.delenv("LAXAI_BACKEND", raising=False)
