"""The training curves over REST (``GET /jobs/{id}/plot.png``, the epoch rows in ``GET /status``) and
``laxai status ID --plot FILE``: real HTTP to the service, real SQLite; the rows stored as the worker's
progress writes store them (orchestrator/domain/epochs.py)."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from orchestrator.cli.commands import app
from orchestrator.config import load_settings
from orchestrator.domain.epochs import EpochRow, with_epochs
from orchestrator.serve import ServiceThread

BODY = {"training_params": {"epochs": 4}, "model_params": {"architecture": "yolov8n", "input_size": 64},
        "custom_name": "plotted"}
TOKEN_A, TOKEN_B = "tok-a-123456", "tok-b-123456"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = load_settings(LAXAI_HOME=tmp_path_factory.mktemp("plot"),
                             LAXAI_API_TOKENS=f"{TOKEN_A}:team-a,{TOKEN_B}:team-b")
    with ServiceThread(settings, dispatch=False) as svc:  # no training: the rows are stored by the test
        yield svc


@pytest.fixture
def a(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN_A}"},
                      timeout=60) as client:  # the first picture imports matplotlib: seconds on a busy machine
        yield client


def submit_with_epochs(service, client, epochs: int) -> str:
    task_id = client.post("/orchestrate", json=BODY).json()["task_id"]
    rows = [EpochRow(epoch=e, attempt=1, box=2.0 / e, val_box=2.1 / e, map50=round(0.2 * e, 2), map50_95=round(0.1 * e, 2))
            for e in range(1, epochs + 1)]
    service.runtime.backend.store.update(task_id, lambda j: with_epochs(j, rows), kind="progress")
    return task_id


def test_the_plot_is_a_png_of_the_jobs_epochs_and_status_lists_them(service, a):
    task_id = submit_with_epochs(service, a, 3)
    response = a.get(f"/jobs/{task_id}/plot.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.text["Epochs"] == "3" and len(response.content) < 200_000
    status = a.get("/status", params={"task_id": task_id}).json()
    assert [(r["epoch"], r["attempt"], r["map50"]) for r in status["epochs"]] == [(1, 1, 0.2), (2, 1, 0.4), (3, 1, 0.6)]
    assert a.get(f"/jobs/{task_id}").json()["epochs"] == status["epochs"]


def test_another_tenants_plot_is_404_and_no_epoch_yet_is_409(service, a):
    task_id = submit_with_epochs(service, a, 2)
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN_B}"}) as b:
        other = b.get(f"/jobs/{task_id}/plot.png")
    assert other.status_code == 404 and "image" not in other.headers["content-type"]
    fresh = a.post("/orchestrate", json=BODY).json()["task_id"]
    early = a.get(f"/jobs/{fresh}/plot.png")
    assert early.status_code == 409 and "no finished epoch yet" in early.json()["error"]
    assert httpx.get(f"{service.url}/jobs/{task_id}/plot.png").status_code == 401


def test_laxai_status_plot_writes_the_png(service, a, tmp_path):
    task_id = submit_with_epochs(service, a, 2)
    target = tmp_path / "curves.png"
    runner = CliRunner()
    result = runner.invoke(app, ["status", task_id, "--plot", str(target), "--url", service.url, "--token", TOKEN_A])
    assert result.exit_code == 0, result.output
    assert Image.open(target).text["Epochs"] == "2"
    fresh = a.post("/orchestrate", json=BODY).json()["task_id"]
    refused = runner.invoke(app, ["status", fresh, "--plot", str(tmp_path / "none.png"), "--url", service.url,
                                  "--token", TOKEN_A])
    assert refused.exit_code == 2 and "no finished epoch yet" in refused.output
    assert not (tmp_path / "none.png").exists()
