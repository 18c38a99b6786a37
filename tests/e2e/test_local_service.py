"""The local backend end to end: `laxai serve` as a real process, real workers, real tiny trainings."""

from __future__ import annotations

import re
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.serve import LAXAI, ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def intervals(view: dict) -> list[tuple[datetime, datetime]]:
    return [(_t(a["started"]), _t(a["ended"])) for a in view["attempts"] if a["ended"]]


def assert_never_overlapping(views: dict[str, dict]) -> None:
    spans = sorted(span for view in views.values() for span in intervals(view))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two executions overlapped: {spans}"


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def test_seed_example_body_trains_to_completion_and_status_has_the_seed_format(home):
    body = {
        "tenant_id": "e2e",
        "training_params": {"epochs": 2, "batch_size": 8, "learning_rate": 0.001, "model_type": "detection"},
        "model_params": {"architecture": "yolov8n", "input_size": 64},
        "custom_name": "my-training-job",
        "wandb_tags": ["tag1", "tag2"],
        "dataset": "synthetic:8",
    }
    with ServeProcess(home) as serve, serve.client() as client:
        submitted = client.post("/orchestrate", json=body)
        assert submitted.status_code == 202
        task = submitted.json()["task_id"]
        view = wait_for(client, [task])[task]
        assert view["status"] == "completed", view
        assert view["progress"]["epoch"] == 2 and view["progress"]["total_epochs"] == 2
        assert view["progress"]["progress_percent"] == 100
        assert set(view["metrics"]) >= {"precision", "recall", "mAP50", "mAP50-95"}
        assert view["cost"]["billed_seconds"] > 0 and view["cost"]["estimate_gpu_type"] == "nvidia-l4"
        assert Path(view["artifacts"]["best_checkpoint"]).is_file()
        assert [a["why"] for a in view["attempts"]] == ["completed"]
        models = client.get("/models").json()["models"]
        assert [(m["name"], m["version"], m["task_id"]) for m in models] == [("my-training-job", 1, task)]
        assert any("epoch" in line.lower() or "Epoch" in line for line in client.get(f"/jobs/{task}/logs").json()["lines"])
    # laxai serve froze its start-up heap before serving (orchestrator/serve.py, settle_heap)
    assert re.search(r"\b\d{4,} start-up objects set aside from garbage collection", serve.output())


def test_max_concurrent_jobs_1_runs_three_jobs_one_at_a_time(home):
    seen_running: list[int] = []
    with ServeProcess(home, MAX_CONCURRENT_JOBS=1) as serve, serve.client() as client:
        tasks = [client.post("/orchestrate", json=tiny_job(custom_name=f"j{i}")).json()["task_id"] for i in range(3)]
        views = wait_for(client, tasks,
                         on_poll=lambda vs: seen_running.append(sum(v["status"] == "running" for v in vs.values())))
    assert all(v["status"] == "completed" for v in views.values()), views
    assert max(seen_running) == 1
    assert_never_overlapping(views)
    # All three workers forked from one warm-start process (WARM_WORKERS, worker/warm.py)
    assert serve.output().count("workers start warm") == 1 and "start cold" not in serve.output()


def test_jobs_queued_when_the_service_stops_run_after_it_restarts(home):
    serve = ServeProcess(home, MAX_CONCURRENT_JOBS=1).start()
    with serve.client() as client:
        tasks = [client.post("/orchestrate", json=tiny_job(custom_name=f"r{i}")).json()["task_id"] for i in range(3)]
        wait_for(client, tasks[:1], statuses={"running", "completed"})
    serve.stop(signal.SIGTERM)
    restarted = ServeProcess(home, MAX_CONCURRENT_JOBS=1)
    restarted.port = serve.port  # same URL, same state
    with restarted, restarted.client() as client:
        views = wait_for(client, tasks)
    assert all(v["status"] == "completed" for v in views.values()), views
    # Nothing ran twice: one execution per job (the running one outlived the service).
    assert all(len(v["attempts"]) == 1 for v in views.values()), views
    assert_never_overlapping(views)


def test_cli_submit_wait_status_list_logs_models_cancel_retry(home):
    with ServeProcess(home) as serve:
        env = {**serve.env, "LAXAI_URL": serve.url, "LAXAI_TOKEN": serve.token}

        def laxai(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            result = subprocess.run([LAXAI, *args], env=env, capture_output=True, text=True, timeout=300)
            if ok:
                assert result.returncode == 0, result.stdout + result.stderr
            return result

        done = laxai("submit", "--epochs", "1", "--imgsz", "64", "--batch", "8", "--arch", "yolov8n",
                     "--dataset", "synthetic:8", "--name", "cli-run", "--wait")
        task = done.stdout.strip().splitlines()[0]
        assert "completed" in done.stdout and "mAP50-95" in done.stdout and "Cost" in done.stdout
        assert task in laxai("list").stdout
        assert '"status": "completed"' in laxai("status", task, "--json").stdout
        curves = home.parent / "curves.png"  # its training curves, from GET /jobs/{id}/plot.png
        assert "Training curves written" in laxai("status", task, "--plot", str(curves)).stderr
        assert curves.read_bytes().startswith(b"\x89PNG")
        assert laxai("logs", task).stdout.strip()
        assert "cli-run" in laxai("models", "list").stdout
        bad = laxai("submit", "--epochs", "0", ok=False)
        assert bad.returncode == 2 and "training_params.epochs" in bad.stderr
        queued = laxai("submit", "--epochs", "50", "--dataset", "synthetic:8", "--imgsz", "64",
                       "--priority", "0").stdout.strip()
        cancelled = laxai("cancel", queued).stdout
        assert "cancel" in cancelled
        retried = laxai("retry", task).stdout.strip()
        assert retried != task
        view = wait_for(serve.client(), [retried])[retried]
        assert view["status"] == "completed" and view["retry_of"] == task
