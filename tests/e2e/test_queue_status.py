"""Where a queued job stands and when a running one ends, end to end: `laxai serve` as a real process
with MAX_CONCURRENT_JOBS=1, real workers training tiny jobs, GET /status over HTTP and the real
`laxai status` (orchestrator/queue_view.py, orchestrator/domain/queue_position.py, domain/eta.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from tests.support.serve import LAXAI, ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG = {"training_params": {"epochs": 300}, "dataset": "synthetic:16"}  # runs until cancelled


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def submit(client, name: str, **overrides) -> str:
    response = client.post("/orchestrate", json=tiny_job(custom_name=name, **{**LONG, **overrides}))
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def status(client, task_id: str) -> dict:
    response = client.get("/status", params={"task_id": task_id})
    assert response.status_code == 200, response.text
    return response.json()


def with_eta(client, task_id: str, timeout: float = 180) -> dict:
    """The job's status once its worker reported a pace (an ETA)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = status(client, task_id)
        if view["eta"]:
            return view
        assert view["status"] == "running", view
        time.sleep(0.5)
    raise AssertionError(f"no ETA in {timeout}s: {view}")


class Output:
    """A child's output, read as it comes (ANSI codes stripped)."""

    def __init__(self, proc: subprocess.Popen):
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            self.chunks.append(chunk)

    def text(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode("utf-8", "replace"))

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            assert time.monotonic() < deadline, f"{text!r} never shown: {self.text()[-2000:]}"
            time.sleep(0.2)


def test_queued_jobs_get_positions_1_to_n_and_move_up_when_the_first_ends(home):
    with ServeProcess(home, MAX_CONCURRENT_JOBS=1) as serve, serve.client() as client:
        first = submit(client, "first")
        wait_for(client, [first], statuses={"running"})
        waiting = [submit(client, f"w{i}") for i in range(3)]
        views = [status(client, t) for t in waiting]
        assert [v["queue"]["position"] for v in views] == [1, 2, 3]
        assert {v["queue"]["waiting_for"]["reason"] for v in views} == {"slots"}
        assert [v["queue"]["waiting_for"]["text"] for v in views] == [
            "the only slot is busy, next in line", "the only slot is busy, 1 job ahead",
            "the only slot is busy, 2 jobs ahead"]
        assert all(v["eta"] is None and not v["queue"]["at_least"] for v in views)
        listed = {j["task_id"]: j for j in client.get("/jobs").json()["jobs"]}
        assert [listed[t]["queue"]["position"] for t in waiting] == [1, 2, 3]  # GET /jobs says the same

        running = with_eta(client, first)
        assert running["queue"] is None and running["eta"]["seconds"] > 0
        finishes = datetime.fromisoformat(running["eta"]["finishes_at"].replace("Z", "+00:00"))
        assert finishes > datetime.now(timezone.utc)

        assert client.post(f"/jobs/{first}/cancel").json()["changed"]
        wait_for(client, [first], statuses={"cancelled"})
        wait_for(client, waiting[:1], statuses={"running"})  # the dispatcher gave it the slot
        moved = [status(client, t) for t in waiting[1:]]
        assert [v["queue"]["position"] for v in moved] == [1, 2]
        assert [v["queue"]["waiting_for"]["text"] for v in moved] == [
            "the only slot is busy, next in line", "the only slot is busy, 1 job ahead"]
        assert status(client, waiting[0])["queue"] is None
        for task_id in waiting:
            client.post(f"/jobs/{task_id}/cancel")


def test_cli_status_shows_the_queue_line_and_the_eta_and_watch_stops_cleanly_on_ctrl_c(home):
    with ServeProcess(home, MAX_CONCURRENT_JOBS=1) as serve, serve.client() as client:
        env = {**serve.env, "LAXAI_URL": serve.url, "LAXAI_TOKEN": serve.token, "COLUMNS": "200"}

        def laxai(*args: str) -> str:
            result = subprocess.run([LAXAI, *args], env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        first = submit(client, "first")
        wait_for(client, [first], statuses={"running"})
        second = submit(client, "second")
        assert "1st in line: the only slot is busy, next in line" in laxai("status", second)
        with_eta(client, first)
        shown = laxai("status", first)
        assert "ETA " in shown and " UTC" in shown and "in line" not in shown

        # A terminal as far as rich knows: the live view redraws as it goes, so its ETA can be seen live.
        live_env = {**env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"}
        watch = subprocess.Popen([LAXAI, "status", first, "--watch"], env=live_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        seen = Output(watch)
        seen.wait_for("ETA ")  # the live view of the running job shows its ETA, with its finish time
        seen.wait_for(" UTC")
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == 130, seen.text()
        out = seen.text()
        assert "Stopped watching" in out and "Traceback" not in out and "KeyboardInterrupt" not in out
        assert status(client, first)["status"] == "running"  # Ctrl-C stopped the watching, not the job
        client.post(f"/jobs/{second}/cancel")
        client.post(f"/jobs/{first}/cancel")
