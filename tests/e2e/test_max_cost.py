"""The per-job cost cap end to end, with real workers on the local backend: `laxai serve` as a process, a job
submitted by `laxai submit --max-cost` stops at its first checkpoint (cancelled, by ``budget``, the words
in /status), a Retry continues from that checkpoint (its first execution starts at epoch 1) and completes;
then the spend report over real HTTP (GET /costs) and from `laxai costs`. A budget used up while a job runs
(set over REST by an admin) stops it at its next checkpoint too."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.serve import LAXAI, ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow

CAP = 0.0001  # USD: reached within the first seconds of any execution (imports alone take longer)


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def cli(serve: ServeProcess, *args: str) -> subprocess.CompletedProcess:
    env = {**serve.env, "LAXAI_URL": serve.url, "LAXAI_TOKEN": serve.token, "COLUMNS": "200"}
    return subprocess.run([LAXAI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_max_cost_stops_at_a_checkpoint_and_retry_resumes_from_it(home):
    with ServeProcess(home, PROGRESS_INTERVAL="0.5") as serve, serve.client() as client:
        refused = cli(serve, "submit", "--epochs", "2", "--max-cost", "0")
        assert refused.returncode == 2 and "max_cost_usd" in refused.stderr, refused.stderr
        sent = cli(serve, "submit", "--epochs", "2", "--batch", "8", "--arch", "yolov8n", "--imgsz", "64",
                   "--dataset", "synthetic:16", "--max-cost", str(CAP), "--name", "capped")
        assert sent.returncode == 0, sent.stderr
        task = sent.stdout.strip()
        stopped = wait_for(client, [task])[task]
        summary = cli(serve, "status", task)

        assert stopped["status"] == "cancelled", stopped
        assert stopped["cancel"]["by"] == "budget", stopped["cancel"]
        words = stopped["cancel"]["detail"]
        assert words.startswith("stopped at the cost cap: $") and words.endswith("spent of $0.0001"), words
        assert stopped["attempts"][-1]["detail"] == words and stopped["attempts"][-1]["end_epoch"] == 1
        assert stopped["progress"]["epoch"] == 1  # the first epoch's checkpoint, not a mid-epoch stop
        assert stopped["artifacts"]["last_checkpoint"], stopped["artifacts"]
        assert stopped["cost"]["usd"] >= CAP
        assert summary.returncode == 0 and words in summary.stdout and "laxai retry" in summary.stdout, summary.stdout

        retried = client.post(f"/jobs/{task}/retry")
        assert retried.status_code == 202, retried.text
        again = retried.json()["task_id"]
        done = wait_for(client, [again])[again]
        costs = client.get("/costs", params={"period": "month"})
        bad = client.get("/costs", params={"period": "year"})
        shown = cli(serve, "costs", "--period", "week")

    assert done["status"] == "completed", done
    assert done["resume_from"] == task and done["retry_of"] == task
    first = done["attempts"][0]
    assert first["start_epoch"] == 1, first  # the epoch paid for stayed done
    assert done["progress"]["epoch"] == 2

    assert costs.status_code == 200, costs.text
    report = costs.json()
    assert report["period"] == "month" and report["billed_jobs"] == 2 and report["jobs"] == 2
    spent = stopped["cost"]["usd"] + done["cost"]["usd"]
    assert report["total_usd"] == pytest.approx(spent, rel=1e-3)
    assert [(line["key"], line["jobs"]) for line in report["by_architecture"]] == [("yolov8n", 2)]
    assert report["by_user"][0]["key"] == "(no user)" and report["by_gpu_type"][0]["jobs"] == 2
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "period", bad.text
    assert shown.returncode == 0, shown.stderr
    assert "Spend this week" in shown.stdout and "yolov8n" in shown.stdout and "Architecture" in shown.stdout


def test_a_budget_used_up_while_a_job_runs_stops_it_at_its_next_checkpoint(home):
    token = "e2e-admin-token-123456"
    with ServeProcess(home, token=token, LAXAI_API_TOKENS=f"{token}:e2e:admin", BUDGET_CHECK_SECONDS="0.5",
                      PROGRESS_INTERVAL="0.5") as serve, serve.client() as client:
        sent = client.post("/orchestrate", json=tiny_job(training_params={"epochs": 5}, dataset="synthetic:32"))
        task = sent.json()["task_id"]
        wait_for(client, [task], statuses=("running",))
        put = client.put("/budgets", json={"scope": "tenant", "key": "e2e", "usd": 0.0001, "period": "month"})
        assert put.status_code == 200, put.text
        view = wait_for(client, [task])[task]

    assert view["status"] == "cancelled" and view["cancel"]["by"] == "budget", view
    words = view["cancel"]["detail"]
    assert words.startswith("stopped: tenant e2e's $0.0001/month budget is used up ($"), words
    assert view["attempts"][-1]["detail"] == words
    assert 0 < view["progress"]["epoch"] < 5, view["progress"]  # at a checkpoint, before the end
    assert view["artifacts"]["last_checkpoint"]
