"""A bare ``YOLO(...).train(...)``, with the worker's exact Ultralytics arguments, for comparison.

``python -m bench.bare_train --data DATA_YAML --home DIR ...`` trains in a fresh
process and prints one JSON line: when train() was called, how long it took
(wall and process CPU time), when its first batch ended, and the process's peak RSS when it returned (the
same figures, measured the same way, as the worker's timing lines). Like the
worker it first applies ``worker.offline`` (no network: the same Ultralytics
settings and AMP answer), so both train with identical configuration; nothing
else of the system (store, threads, W&B) is involved.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_train")
    parser.add_argument("--data", required=True, help="data.yaml")
    parser.add_argument("--home", required=True, help="scratch LAXAI_HOME-like directory (settings, runs)")
    parser.add_argument("--arch", default="yolov8n")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--device", default="cpu", help="'cpu' or a CUDA index like '0'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    home = Path(args.home)
    from worker import offline

    offline.prepare(home)
    import ultralytics  # noqa: F401 - after prepare(), as in the worker

    offline.configure_ultralytics(home)
    from ultralytics import YOLO

    from worker.training import GPU_WORKERS, SEED

    import os

    gpu = args.device != "cpu"
    # The worker's arguments (worker/training.py TrainingSession.train, fresh start), value for value.
    train_args = {
        "data": args.data,
        "device": args.device,
        "workers": min(GPU_WORKERS, os.cpu_count() or 1) if gpu else 0,
        "plots": False,
        "batch": args.batch,
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "lr0": args.lr,
        "optimizer": "AdamW",
        "project": str(home / "runs"),
        "name": "train",
        "exist_ok": True,
        "seed": SEED,
        "verbose": True,
    }
    model = YOLO(f"{args.arch}.yaml")
    first: list[float] = []

    def on_batch_end(trainer) -> None:  # noqa: ANN001 - an Ultralytics trainer
        if not first:
            first.append(time.time())

    model.add_callback("on_train_batch_end", on_batch_end)
    started_wall, started, cpu = time.time(), time.monotonic(), time.process_time()
    model.train(**train_args)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"train_started": started_wall, "train_seconds": seconds, "train_cpu": cpu,
                      "first_batch": first[0] if first else None, "peak_rss_mib": peak}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
