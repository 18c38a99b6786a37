"""``python -m bench [--quick] [--out PATH] [--only name,...]``: run the benchmarks, print a table, write BENCHMARKS.md.

Items run one after another (they share the machine's cores). An item that
cannot run here (no GPU, no bot/) is reported as not run; one that breaks is
reported with its error and makes the exit status 1. Targets missed do not
change the exit status: these are measurements, not tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import machine, report
from bench.core import Context, NotHere, Result
from bench.items import ITEMS, select

REPO = Path(__file__).resolve().parent.parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (CI smoke test)")
    parser.add_argument("--out", type=Path, help="where to write BENCHMARKS.md (default: the repository's for a "
                        "full run; a file in the temp directory for --quick or --only, so as not to replace it)")
    parser.add_argument("--only", help=f"comma-separated items: {', '.join(item.key for item in ITEMS)} (or 1-{len(ITEMS)})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, runs)")
    args = parser.parse_args(argv)
    if args.out is None:
        partial = args.quick or args.only
        args.out = Path(tempfile.gettempdir()) / "laxai-BENCHMARKS-partial.md" if partial else REPO / "BENCHMARKS.md"
    return args


def run_item(item, ctx: Context) -> tuple[Result, bool]:  # noqa: ANN001 - an Item
    """(result, broke)."""
    started = time.monotonic()
    broke = False
    try:
        result = item.runner()(ctx)
    except NotHere as exc:
        result = Result(item.key, item.title, item.target, skipped=str(exc), measures=exc.measures,
                        details=exc.details)
    except Exception as exc:  # noqa: BLE001 - report it and go on with the other items
        broke = True
        result = Result(item.key, item.title, item.target, skipped=f"error: {type(exc).__name__}: {exc}"[:500])
        traceback.print_exc()
    result.title, result.target = item.title, result.target or item.target
    result.seconds = time.monotonic() - started
    return result, broke


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        items = select(args.only)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx = Context(quick=args.quick)
    started_at, started = dt.datetime.now(dt.timezone.utc), time.monotonic()
    results, broken = [], []
    try:
        for item in items:
            print(f"bench: {item.key} ...", file=sys.stderr, flush=True)
            result, broke = run_item(item, ctx)
            results.append(result)
            if broke:
                broken.append(item.key)
            print(f"bench: {item.key}: {result.measured()} [{result.verdict}] ({result.seconds:.0f} s)",
                  file=sys.stderr, flush=True)
    finally:
        from bench import emulators

        emulators.stop_all()
        if not args.keep:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
        else:
            print(f"bench: scratch kept in {ctx.workdir}", file=sys.stderr)
    print(report.table(results))
    text = report.markdown(results, machine.describe(), args.quick, started_at, time.monotonic() - started)
    report.write(args.out, text)
    print(f"\nwrote {args.out}")
    if broken:
        print(f"bench: items that broke: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
