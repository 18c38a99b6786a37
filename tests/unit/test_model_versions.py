"""The pure parts of compare and promote: alias and version words, the best earlier version, the deltas'
words; the worker's baseline read (real SQLite registry and store); `/train models` parsing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from bot import commands
from bot.options import OptionErrors
from orchestrator.domain.errors import SpecError
from orchestrator.domain.job import CostSummary, utcnow
from orchestrator.domain.model_versions import Baseline, best_earlier, check_alias, comparison, parse_version
from orchestrator.registry.base import ModelEntry
from orchestrator.registry.sqlite import SqliteModelRegistry
from orchestrator.stores.sqlite import SqliteJobStore
from tests.slack import jobflow
from worker.baseline import baseline_of


def test_alias_and_version_words():
    assert check_alias("production") == "production" and check_alias("canary-2") == "canary-2"
    for bad in ("", "Production", "prod!", "2nd", "x" * 41, "a b"):
        with pytest.raises(SpecError) as raised:
            check_alias(bad)
        assert raised.value.errors[0].field == "alias" and "lower-case" in raised.value.errors[0].message
    assert parse_version("v3") == parse_version("3") == parse_version("V3") == 3
    for bad in ("latest", "v0", "-1", "v3.1", ""):
        with pytest.raises(SpecError) as raised:
            parse_version(bad)
        assert raised.value.errors[0].field == "version"


def test_the_best_earlier_version_by_map50_95():
    versions = [(1, "a", {"mAP50-95": 0.4}), (2, "b", {"mAP50": 0.9}), (3, "c", {"mAP50-95": 0.4}),
                (4, "d", {"mAP50-95": 0.2}), (5, "e", {"mAP50-95": 0.9})]
    assert best_earlier(versions, 5) == (3, "c")  # a tie: the newer; v2 has no mAP50-95; v5 is not earlier
    assert best_earlier(versions, 2) == (1, "a")
    assert best_earlier(versions, 1) is None
    assert best_earlier([(1, "a", {})], 2) is None


def test_the_comparison_words():
    base = Baseline(version=2, task_id="t", map50_95=0.5, map50=0.7, cost_usd=1.25, wall_seconds=600)
    text = comparison(base, {"mAP50-95": 0.45, "mAP50": 0.7}, 1.0, 665)
    assert text == ("v2 (best earlier, mAP50-95 0.500): mAP50-95 \u22120.050 \u00b7 mAP50 \u00b10.000 \u00b7 "
                    "cost \u2212$0.25 \u00b7 wall time +1m 05s")
    tiny = comparison(Baseline(version=1, task_id="t", map50_95=0.1, cost_usd=0.0004), {"mAP50-95": 0.2}, 0.0009, None)
    assert tiny == "v1 (best earlier, mAP50-95 0.100): mAP50-95 +0.100 \u00b7 cost +$0.0005"  # sub-cent runs


def test_the_worker_picks_the_baseline_with_its_cost_and_wall_time(tmp_path):
    registry, store = SqliteModelRegistry(tmp_path / "db"), SqliteJobStore(tmp_path / "db")
    jobs = []
    for minutes, cost in ((10, 0.5), (4, 0.2)):
        job = jobflow.make_job()
        started = utcnow() - timedelta(hours=1)
        job = job.model_copy(update={"started_at": started, "finished_at": started + timedelta(minutes=minutes),
                                     "cost": CostSummary(usd=cost)})
        store.create(job)
        jobs.append(job)
    for job, score in zip(jobs, (0.6, 0.3)):
        registry.register(ModelEntry(tenant_id=job.tenant_id, name="m", task_id=job.task_id, architecture="yolo11n",
                                     checkpoint="c", metrics={"mAP50-95": score, "mAP50": score + 0.1}))
    third = registry.register(ModelEntry(tenant_id=jobflow.TEAM, name="m", task_id="new", architecture="yolo11n",
                                         checkpoint="c", metrics={"mAP50-95": 0.5}))
    base = baseline_of(registry, store, third)
    assert (base.version, base.task_id, base.map50_95, base.map50) == (1, jobs[0].task_id, 0.6, 0.7)
    assert base.cost_usd == 0.5 and base.wall_seconds == 600
    first = registry.get(jobflow.TEAM, "m", 1)
    assert baseline_of(registry, store, first) is None  # nothing earlier
    other = registry.register(ModelEntry(tenant_id="team-x", name="m", task_id="x1", architecture="yolo11n",
                                         checkpoint="c", metrics={"mAP50-95": 0.9}))
    assert baseline_of(registry, store, other) is None  # another tenant's versions are not earlier ones
    registry.close()
    store.close()


def test_train_models_parses_a_name_with_spaces():
    assert commands.parse("models") == commands.Models(None)
    assert commands.parse("models line counter v2") == commands.Models("line counter v2")
    assert commands.parse('models "my run"') == commands.Models("my run")
    with pytest.raises(OptionErrors) as raised:
        commands.parse("models " + "x" * 101)
    assert raised.value.errors[0].field == "models"


class FakeArtifact:
    def __init__(self, log: list):
        self.aliases, self.log = ["latest"], log

    def save(self) -> None:
        self.log.append(list(self.aliases))


def test_promote_tags_wandb_only_online_and_a_wandb_failure_changes_nothing(tmp_path, monkeypatch):
    """W&B's alias follows the registry's when W&B is online; offline it is never called, and a W&B
    error is logged while the promotion stands."""
    import sys
    import types

    from orchestrator.config import load_settings
    from orchestrator.model_service import ModelService

    saved, asked = [], []

    def api(timeout: float = 0):
        def artifact(path: str, type: str):  # noqa: A002 - W&B's name
            asked.append(path)
            if "broken" in path:
                raise RuntimeError("W&B is down")
            return FakeArtifact(saved)
        return types.SimpleNamespace(artifact=artifact)

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=api))
    registry = SqliteModelRegistry(tmp_path / "db")
    for task, ref in (("t1", "abc-acme-m:job-t1"), ("t2", "broken:job-t2")):
        registry.register(ModelEntry(tenant_id="acme", name="m", task_id=task, architecture="yolo11n", checkpoint="c",
                                     wandb_artifact=ref, source="api"))
    for mode in ("offline", "online"):
        settings = load_settings(LAXAI_HOME=tmp_path / mode, WANDB_MODE=mode)
        jobs = types.SimpleNamespace(backend=types.SimpleNamespace(registry=registry), settings=settings, store=None)
        service = ModelService(jobs)  # type: ignore[arg-type]
        entry = registry.get("acme", "m", 1)
        thread = service.tag_wandb(entry, "production")
        if mode == "offline":
            assert thread is None and asked == []
            continue
        thread.join(10)
        assert asked == ["laxai-train/abc-acme-m:job-t1"] and saved == [["latest", "production"]]
        done = service.promote("acme", "m", 2, by="api:acme", admin=True)  # its W&B artifact cannot be reached
        assert done.changed and registry.aliases("acme", "m")[0].version == 2
        deadline = time.monotonic() + 10
        while len(asked) < 2 and time.monotonic() < deadline:  # the W&B thread tried, and failed
            time.sleep(0.02)
        assert asked[-1] == "laxai-train/broken:job-t2" and len(saved) == 1
    registry.close()
