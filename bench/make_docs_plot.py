"""Make ``docs/curves.png`` from a real tiny run, with the project's own renderer.

``python -m bench.make_docs_plot [--out docs/curves.png] [--first-execution 30]``

Starts the local service in this process (a dispatcher and real worker subprocesses) in a
temporary ``LAXAI_HOME``, submits the demo's job (``laxai demo``: yolov8n from scratch on generated
shapes), and cuts its first execution short with a small ``TASK_TIMEOUT``, so that the job goes
on in a second execution, as a long GPU run does before Cloud Run's one-hour cap, and the picture
shows where ("continued"). Workers read the environment when launched: once the first one runs,
the cap is lifted, so the second execution trains to the end. When the job has ended it saves ``GET /jobs/{id}/plot.png``: the same
image the job's Slack thread gets. Not a benchmark item: it makes a picture for the README.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARGIN = 5.0  # TASK_TIMEOUT_MARGIN: the first execution stops this long before its TASK_TIMEOUT


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.make_docs_plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "curves.png")
    parser.add_argument("--first-execution", type=float, default=90.0,
                        help="seconds the first execution may run before it hands over (0: no continuation)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def configure(home: Path, first_execution: float) -> None:
    """The environment the service and its workers read (workers inherit it)."""
    os.environ.update({"LAXAI_HOME": str(home), "LAXAI_BACKEND": "local", "WANDB_MODE": "offline",
                       "YOLO_DEVICE": os.environ.get("YOLO_DEVICE", "cpu")})
    if first_execution > 0:
        os.environ.update({"TASK_TIMEOUT": f"{first_execution + MARGIN:g}", "TASK_TIMEOUT_MARGIN": f"{MARGIN:g}"})


def run(out: Path, first_execution: float, timeout: float) -> int:
    from orchestrator.cli import demo
    from orchestrator.cli.client import LaxaiClient
    from orchestrator.config import load_settings
    from orchestrator.serve import ServiceThread

    settings = load_settings()
    body = {"training_params": {"epochs": demo.EPOCHS, "batch_size": demo.BATCH_SIZE,
                                "learning_rate": demo.LEARNING_RATE},
            "model_params": {"architecture": demo.ARCHITECTURE, "input_size": demo.INPUT_SIZE},
            "dataset": demo.DATASET, "custom_name": "demo"}
    with ServiceThread(settings) as service:
        client = LaxaiClient(service.url, next(iter(settings.api_tokens)), timeout=120)
        task_id = client.submit(body)["task_id"]
        print(f"submitted {task_id}: {body}")
        view = wait(client, task_id, timeout)
        attempts = [(a["number"], a["why"], a["start_epoch"], a["end_epoch"]) for a in view["attempts"]]
        print(f"{view['status']}: attempts {attempts}, metrics {view['metrics']}")
        if not view.get("epochs"):
            print("no epoch finished: no picture", file=sys.stderr)
            return 1
        png = client.plot(task_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"wrote {out} ({len(png)} bytes, {len(view['epochs'])} epochs)")
    return 0 if view["status"] == "completed" else 1


def wait(client, task_id: str, timeout: float) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        view = client.status(task_id)
        if view["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return view
        print(f"  {view['status']:9} {view['progress']['message']}", flush=True)
        if view["status"] == "running" and view["progress"]["epoch"] >= 1:
            os.environ.pop("TASK_TIMEOUT", None)  # the first worker keeps its cap; the next one gets none
        time.sleep(5)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="laxai-docs-plot-") as home:
        configure(Path(home), args.first_execution)
        return run(args.out.resolve(), args.first_execution, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
