"""Errors shown to users carry no server paths and no traceback (issue 14, finding 10).

``/status`` ``error`` and the Slack failure reply get the exception's type and message
and the job's own output; the traceback stays in the worker's log.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bot import blocks
from orchestrator.config import REPO_ROOT
from orchestrator.domain.job import JobError
from orchestrator.domain.status import JobStatus
from tests.worker.conftest import TENANT, Harness
from worker.error_text import exception_lines, scrub, scrubbed, server_roots, training_output, user_error_text

# A '/' that starts an absolute path of two or more parts (not a URL's "//host/x").
ABSOLUTE = re.compile(r"(?<![\w.~$>:/\\-])/[^\s/'\"]+/")


def server_paths(text: str, home: Path) -> list[str]:
    """Absolute paths in ``text``, and any mention of the server's own directories."""
    found = ABSOLUTE.findall(text)
    found += [root for root in (str(home), str(REPO_ROOT), sys.prefix) if root in text]
    return found


def raise_chain(home: Path) -> BaseException:
    try:
        try:
            open(home / "datasets" / "nope" / "data.yaml")
        except FileNotFoundError as missing:
            raise RuntimeError(f"Dataset '{home}/data/acme/ds/data.yaml' error: see {sys.prefix}/lib/x.py, "
                               "/srv/other-tenant/secret.yaml and https://docs.ultralytics.com/datasets") from missing
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


def test_message_and_tail_have_the_exception_but_no_paths_or_frames(tmp_path):
    home = tmp_path / "home"
    message, tail = user_error_text(raise_chain(home), home, None, 15)
    assert message.startswith("RuntimeError: Dataset '$LAXAI_HOME/data/acme/ds/data.yaml' error")
    assert "https://docs.ultralytics.com/datasets" in message  # URLs are not paths
    assert "…/secret.yaml" in message and "<python>/lib/x.py" in message
    assert [line.split(":")[0] for line in tail] == ["FileNotFoundError", "RuntimeError"]
    text = "\n".join([message, *tail])
    assert server_paths(text, home) == [] and "Traceback" not in text and 'File "' not in text


def test_the_jobs_own_output_is_kept_without_our_log_records_or_tracebacks(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("\n".join([
        "Ultralytics 8.3 Python-3.11 torch-2.5 CPU",
        "2026-11-29 10:00:00,000 INFO worker.runner: attempt 1 started on cpu",
        f"train: Scanning {tmp_path}/data/labels... 0 images, 4 corrupt",
        "      1/3      0.1G      1.2  \r      2/3      0.1G      1.1  ",
        "2026-11-29 10:00:01,000 ERROR worker.runner: training failed",
        "Traceback (most recent call last):",
        '  File "/srv/app/worker/runner.py", line 280, in _train',
        "    self.session.train()",
        "RuntimeError: boom",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        '  File "/srv/app/x.py", line 1, in <module>',
        "ValueError: bang",
        "  its message's second line",
        "2026-11-29 10:00:02,000 INFO worker.runner: job x is now failed (status:failed)",
        "\x1b[34mval:\x1b[0m WARNING no labels found",
    ]) + "\n")
    lines = training_output(log)
    assert lines == ["Ultralytics 8.3 Python-3.11 torch-2.5 CPU", f"train: Scanning {tmp_path}/data/labels... 0 images, 4 corrupt", "      2/3      0.1G      1.1",
                     "\x1b[34mval:\x1b[0m WARNING no labels found"]
    assert scrub(lines[-1], []) == "val: WARNING no labels found"  # no terminal colours for Slack
    assert training_output(None) == [] and training_output(tmp_path / "missing.log") == []


def test_errors_built_elsewhere_are_scrubbed_on_the_way_out(tmp_path):
    home = tmp_path / "home"
    error = JobError(reason="bad_weights", message=f"cannot load {home}/data/acme/w.pt",
                     tail=["Traceback (most recent call last):", '  File "/usr/lib/python3/x.py", line 3, in f',
                           f"UnpicklingError: {tmp_path}/evil.pt"])
    clean = scrubbed(error, home)
    assert clean.message == "cannot load $LAXAI_HOME/data/acme/w.pt"
    assert len(clean.tail) == 1 and clean.tail[0].startswith("UnpicklingError: <tmp>/")
    assert clean.tail[0].endswith("/evil.pt") and server_paths(clean.tail[0], home) == []
    assert all("Traceback" not in line and 'File "' not in line for line in clean.tail)


@pytest.mark.parametrize("text", ["see https://github.com/ultralytics/ultralytics/issues/1", "gs://bucket/a/b.yaml",
                                  "50/100 images", "use /train epochs=3", "km/h"])
def test_things_that_are_not_server_paths_stay(text, tmp_path):
    assert scrub(text, server_roots(tmp_path)) == text


def test_exception_lines_of_a_bare_exception_and_a_multi_line_message():
    assert exception_lines(KeyError("names")) == ["KeyError: 'names'"]
    assert exception_lines(RuntimeError("No valid images\n  a.jpg: corrupt\nSee docs")) == [
        "RuntimeError: No valid images", "  a.jpg: corrupt", "See docs"]


# -- a real worker, failing on a corrupt dataset ---------------------------------------------------

@pytest.fixture
def harness(tmp_path):
    made = Harness(tmp_path / "home")
    yield made
    made.close()


def corrupt_dataset(root: Path) -> Path:
    """A dataset in the tenant's own data root whose images are not images."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4):
            (root / "images" / split / f"{i}.jpg").write_bytes(b"\xff\xd8 this is not a jpeg " * 20)
            (root / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: ['thing']\n")
    return root


@pytest.mark.slow
def test_a_failing_worker_shows_no_server_path_or_traceback(harness):
    dataset = corrupt_dataset(harness.home / "data" / TENANT / "corrupt")
    task_id = harness.submit(dataset=str(dataset), epochs=1)
    code, worker = harness.run(task_id, 1)
    assert code == 0, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED and job.error is not None, worker.tail()
    assert job.error.reason in ("dataset_error", "training_error"), job.error

    status_error = json.dumps(job.status_view()["error"])  # what GET /status returns as "error"
    slack = json.dumps(blocks.failed(job).blocks)  # the Slack thread's failure reply
    for shown in (status_error, slack):
        assert server_paths(shown, harness.home) == [], shown
        assert "Traceback" not in shown and 'File \\"' not in shown and "\\u001b" not in shown, shown
    assert job.error.message.split(":")[0] in status_error
    # The full traceback and paths are still in the worker's log, for `laxai logs`.
    log = worker.log.read_text(errors="replace")
    assert "Traceback (most recent call last)" in log or str(harness.home) in log
