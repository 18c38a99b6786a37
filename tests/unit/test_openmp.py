"""worker/openmp.py: OpenMP's idle threads sleep unless the operator chose otherwise.

That a real worker sets it before torch loads libgomp is checked on a real run
(tests/worker/test_worker_runs.py reads libgomp's own settings from the worker's log).
"""

from __future__ import annotations

import os

from worker.openmp import sleep_when_idle


def test_idle_openmp_threads_sleep_by_default(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    sleep_when_idle()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_an_operators_wait_policy_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    sleep_when_idle()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
