"""``python -m worker --task-id ID --attempt N``: run one attempt of one training job.

The task id and attempt may also come from the environment (``TASK_ID``,
``ATTEMPT``), as Cloud Run execution overrides pass them. Settings come from
the environment and the config file, like every other process.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description="Run one attempt of a training job.")
    parser.add_argument("--task-id", default=os.environ.get("TASK_ID"), help="job to train (env TASK_ID)")
    parser.add_argument("--attempt", type=int, default=os.environ.get("ATTEMPT"),
                        help="attempt number the dispatcher claimed (env ATTEMPT)")
    args = parser.parse_args(argv)
    if not args.task_id:
        parser.error("--task-id (or TASK_ID) is required")
    if args.attempt is None:
        parser.error("--attempt (or ATTEMPT) is required")
    args.attempt = int(args.attempt)
    if args.attempt < 1:
        parser.error("--attempt must be 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # the platform's per-execution clock starts about now
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from worker.openmp import sleep_when_idle

    sleep_when_idle()  # before torch is first imported (worker.runner and below)
    from worker.runner import run  # after argument errors, which need no heavy imports

    return run(args.task_id, args.attempt, started)


if __name__ == "__main__":
    sys.exit(main())
