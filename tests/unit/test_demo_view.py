"""The demo's per-epoch lines (orchestrator/cli/demo.py): each finished epoch printed once, mAP rising."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.cli import demo
from orchestrator.cli import views as cli_views


def view(epochs: list[tuple[float, float]], total: int = 4, status: str = "running") -> dict:
    rows = [{"epoch": n, "attempt": 1, "box": 1.0, "cls": 2.0, "dfl": 0.5, "map50": m50, "map50_95": m}
            for n, (m50, m) in enumerate(epochs, start=1)]
    metrics = {"mAP50": epochs[-1][0], "mAP50-95": epochs[-1][1]} if epochs else {}
    return {"task_id": "t", "status": status, "epochs": rows, "metrics": metrics,
            "progress": {"epoch": len(epochs), "total_epochs": total, "progress_percent": 100.0 * len(epochs) / total,
                         "message": "", "loss": 3.5}}


def printed(lines: demo.EpochLines) -> list[str]:
    return [line for line in lines.console.file.getvalue().splitlines() if line]


def test_each_finished_epoch_is_printed_once_in_order_with_its_map():
    lines = demo.EpochLines(Console(file=io.StringIO(), width=120))
    history = [(0.0, 0.0), (0.31, 0.1), (0.72, 0.4), (0.95, 0.6)]
    for finished in (0, 1, 1, 3, 4):  # polls see none, one, the same one again, two at once, the last
        lines(view(history[:finished]))
    out = printed(lines)
    assert [line.split("mAP50 ")[0].strip() for line in out] == ["epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"]
    assert "0.720" in out[2] and "mAP50-95 0.400" in out[2] and "loss 3.500" in out[2]
    assert out[3].count("█") == round(demo.BAR_WIDTH * 0.95) and out[0].count("█") == 0
    assert demo.learned_line(lines.seen, view([(0.95, 0.6)])["metrics"]) == \
        "Learned: mAP50 0.000 -> 0.950, mAP50-95 0.000 -> 0.600 in 4 epochs"


def test_without_the_epoch_history_the_latest_epoch_comes_from_progress_and_metrics():
    plain = view([(0.0, 0.0), (0.5, 0.2)])
    del plain["epochs"]
    assert demo.rows(plain) == [{"epoch": 2, "map50": 0.5, "map50_95": 0.2, "loss": 3.5}]
    assert demo.rows({"progress": {"epoch": 0, "total_epochs": 3}, "metrics": {}}) == []
    assert demo.learned_line([], {}) is None
    assert demo.learned_line(demo.rows(plain)[:1], {"mAP50": 0.5}).endswith("0.500 -> 0.500 in 2 epochs")
    one = demo.learned_line([{"epoch": 1, "map50": 0.0}], {"mAP50": 0.1})
    assert one == "Learned: mAP50 0.000 -> 0.100 in 1 epoch"


def test_watch_hands_every_view_to_on_view_and_the_lines_land_above_the_bar():
    views = iter([view([], total=2), view([(0.1, 0.0)], total=2), view([(0.1, 0.0), (0.9, 0.5)], total=2, status="completed")])
    console = Console(file=io.StringIO(), width=120)
    lines = demo.EpochLines(console)
    final = cli_views.watch(lambda: next(views), console, interval=0, on_view=lines)
    assert final["status"] == "completed" and [row["epoch"] for row in lines.seen] == [1, 2]
    out = console.file.getvalue()
    assert out.index("epoch 1/2") < out.index("epoch 2/2")
