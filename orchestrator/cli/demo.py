"""`laxai demo`: its defaults, and the lines that show the model learning as the job runs.

The defaults are sized so that a from-scratch yolov8n visibly learns the generated shapes
(worker/datasets.py) in about a minute on two free CPU cores: mAP50 goes from 0 to 0.948 (mAP50-95
0.626) in 9 epochs of 256 images at 96 px. Measured on a shared two-core machine with about one core
free: 10.5 s an epoch, 1m56s for the whole `laxai demo` (two threads free cut a batch from 0.45 to
0.28 s, so about a minute there); the trajectory is the same run to run (fixed seed, deterministic).
Tried on the way: 32 images x 3 epochs (the old demo) and 128 images at 64 px x 12 epochs stay
near 0 (too few optimizer steps); 64 px needs 15 epochs for 0.91, no cheaper than 96 px; lr 0.001
needs 15 epochs (0.962) and 0.002 10 (0.951); 8 epochs at 0.003-0.004 end at 0.937, still
climbing, so the 9th epoch is the margin. Warmup takes 3 epochs (Ultralytics), so mAP rises after it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

EPOCHS = 9
INPUT_SIZE = 96
DATASET = "synthetic:256"
BATCH_SIZE = 16
LEARNING_RATE = 0.004
ARCHITECTURE = "yolov8n"
TARGET_MAP50 = 0.9  # what the defaults reach (tests/e2e/test_local_service.py holds them to it)
BAR_WIDTH = 20


def rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's finished epochs as ``{epoch, map50, map50_95, loss}``, oldest first.

    From the per-epoch history (``epochs`` in the status view) when the service sends it; else the
    latest finished epoch alone, from the progress and metrics (each view then adds at most one)."""
    found = []
    for row in view.get("epochs") or []:
        losses = [row.get(key) for key in ("box", "cls", "dfl")]
        found.append({"epoch": row["epoch"], "map50": row.get("map50"), "map50_95": row.get("map50_95"),
                      "loss": sum(losses) if None not in losses else None})
    if found:
        return found
    progress, metrics = view.get("progress") or {}, view.get("metrics") or {}
    if progress.get("epoch") and "mAP50" in metrics:
        return [{"epoch": progress["epoch"], "map50": metrics["mAP50"], "map50_95": metrics.get("mAP50-95"),
                 "loss": progress.get("loss")}]
    return []


def epoch_line(row: dict[str, Any], total: int) -> Text:
    """``epoch  3/10  mAP50 ████████░░░░ 0.412  mAP50-95 0.201  loss 5.321``."""
    map50 = row.get("map50")
    line = Text(f"epoch {row['epoch']:>{len(str(total))}}/{total}  mAP50 ")
    filled = round(BAR_WIDTH * min(max(map50 or 0.0, 0.0), 1.0))
    line.append("█" * filled, style="green")
    line.append("░" * (BAR_WIDTH - filled), style="dim")
    line.append(f" {map50:.3f}" if map50 is not None else " -")
    if row.get("map50_95") is not None:
        line.append(f"  mAP50-95 {row['map50_95']:.3f}")
    if row.get("loss") is not None:
        line.append(f"  loss {row['loss']:.3f}", style="dim")
    return line


class EpochLines:
    """Called with each status view while the demo watches: prints every newly finished epoch once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown = 0
        self.seen: list[dict[str, Any]] = []

    def __call__(self, view: dict[str, Any]) -> None:
        total = (view.get("progress") or {}).get("total_epochs") or 0
        for row in rows(view):
            if row["epoch"] > self.shown:
                self.shown = row["epoch"]
                self.seen.append(row)
                self.console.print(epoch_line(row, total))


def learned_line(seen: list[dict[str, Any]], metrics: dict[str, float]) -> str | None:
    """``Learned: mAP50 0.000 -> 0.962, mAP50-95 0.000 -> 0.615 in 10 epochs`` (None before any epoch)."""
    if not seen or "mAP50" not in metrics:
        return None
    first = seen[0].get("map50") or 0.0
    text = f"Learned: mAP50 {first:.3f} -> {metrics['mAP50']:.3f}"
    if "mAP50-95" in metrics:
        text += f", mAP50-95 {seen[0].get('map50_95') or 0.0:.3f} -> {metrics['mAP50-95']:.3f}"
    count = seen[-1]["epoch"]
    return f"{text} in {count} epoch{'' if count == 1 else 's'}"
