"""Rich renderings for the CLI: live progress, job summaries and tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column, Table
from rich.text import Text

from orchestrator.domain import durations
from orchestrator.domain.cost import format_usd
from orchestrator.domain.eta import Eta, eta_line
from orchestrator.domain.budget import describe as describe_crossing
from orchestrator.domain.queue_position import ordinal
from orchestrator.domain.cost_split import split_text
from orchestrator.domain.estimate import describe as describe_estimate
from orchestrator.domain.job import CostSummary, Estimate

TERMINAL = {"completed", "failed", "cancelled"}
STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "queued": "white",
         "cancelling": "yellow", "awaiting_approval": "magenta"}
METRIC_ORDER = ("precision", "recall", "mAP50", "mAP50-95")


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


duration = partial(durations.duration, unknown="-", compact=True)  # the tables' short form


def cost_line(cost: dict[str, Any]) -> str:
    line = f"{format_usd(cost.get('usd', 0.0))} for {cost.get('billed_seconds', 0):.1f} s billed on {cost.get('gpu_type')}"
    if cost.get("estimate_gpu_type"):
        line += f"; on {cost['estimate_gpu_type']} it would cost {format_usd(cost.get('estimate_usd') or 0.0)}"
    return line


def split_line(cost: dict[str, Any]) -> str | None:
    """Where the money went (training, overhead, lost), once anything was billed."""
    summary = CostSummary.model_validate(cost)
    return split_text(summary) if summary.billed_seconds > 0 else None


def estimate_line(estimate: dict[str, Any] | None) -> str | None:
    """``Estimate: ≈ 42 min · ≈ $0.55 on nvidia-l4 · from 5 similar runs`` from a response's ``estimate``."""
    if not estimate:
        return None
    return f"Estimate: {describe_estimate(Estimate.model_validate(estimate))}"


def metrics_text(metrics: dict[str, float]) -> str:
    parts = [f"{key} {metrics[key]:.3f}" for key in METRIC_ORDER if key in metrics]
    return "  ".join(parts) or "-"


def progress_line(view: dict[str, Any]) -> str:
    p = view["progress"]
    bits = [f"epoch {p['epoch']}/{p['total_epochs']}"]
    if p.get("batch") and p.get("batches"):
        bits.append(f"batch {p['batch']}/{p['batches']}")
    if p.get("loss") is not None:
        bits.append(f"loss {p['loss']:.3f}")
    if "mAP50-95" in view.get("metrics", {}):
        bits.append(f"mAP50-95 {view['metrics']['mAP50-95']:.3f}")
    if view.get("eta"):  # the service's live ETA (orchestrator/queue_view.py)
        bits.append(eta_line(Eta.model_validate(view["eta"])))
    elif p.get("eta_seconds") is not None and view["status"] == "running":
        bits.append(f"ETA {duration(p['eta_seconds'])}")
    if view.get("queue"):
        bits.append(queue_text(view["queue"]))
    return "  ".join(bits)


def approval_line(approval: dict[str, Any] | None) -> str | None:
    """``Awaiting approval: would cross channel C0123's $50.00/month budget: ...`` for a held job."""
    if not approval or approval.get("decision"):
        return None
    crossed = "; ".join(describe_crossing(c) for c in approval.get("budgets") or []) or "a budget"
    return f"Awaiting approval: would cross {crossed}. An admin can approve it (POST /jobs/ID/approve)."


def queue_text(queue: dict[str, Any]) -> str:
    """``2nd in line: all 1 slots busy, 1 job ahead`` (a ``+`` when the place is a lower bound)."""
    if queue.get("position") is None:  # held outside the line (awaiting_approval): only the reason
        return str(queue["waiting_for"]["text"])
    where = f"{ordinal(queue['position'])}{'+' if queue.get('at_least') else ''} in line"
    return f"{where}: {queue['waiting_for']['text']}"


def watch(fetch: Callable[[], dict[str, Any]], console: Console, interval: float = 0.5,
          on_view: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Show a live progress bar until the job finishes; returns the final view. ``on_view`` sees every
    view (what it prints goes above the bar: the demo's per-epoch lines, orchestrator/cli/demo.py)."""
    bar = Progress(TextColumn("[bold]{task.fields[status]:<10}"), BarColumn(bar_width=40),
                   TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[detail]}"), console=console)
    task = bar.add_task("job", total=100, status="queued", detail="")
    message = Text("", style="dim")
    view = fetch()
    try:
        with Live(Group(bar, message), console=console, refresh_per_second=8, transient=False):
            while True:
                bar.update(task, completed=view["progress"]["progress_percent"], status=view["status"],
                           detail=progress_line(view))
                message.plain = view["progress"]["message"]
                if on_view is not None:
                    on_view(view)
                if view["status"] in TERMINAL:
                    break
                time.sleep(interval)
                view = fetch()
    except KeyboardInterrupt:  # Ctrl-C stops the watching, never the job: no traceback, exit 130
        console.print()
        console.print(f"Stopped watching {view['task_id']}; the job goes on "
                      f"(laxai status {view['task_id']} --watch to follow it again).")
        raise SystemExit(130) from None
    console.print()
    return view


def summary(view: dict[str, Any], models: list[dict[str, Any]] | None = None) -> Table:
    """The end-of-run summary: status, metrics, checkpoint, registry entry, times and cost."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    status = view["status"]
    table.add_row("Job", f"{view['task_id']}  {view.get('custom_name') or ''}")
    table.add_row("Status", Text(status, style=STYLE.get(status, "")))
    table.add_row("Metrics", metrics_text(view.get("metrics", {})))
    artifacts = view.get("artifacts", {})
    if artifacts.get("best_checkpoint"):
        table.add_row("Checkpoint", artifacts["best_checkpoint"])
    if artifacts.get("registry_name"):
        table.add_row("Registry", f"{artifacts['registry_name']} v{artifacts.get('registry_version')}")
    if artifacts.get("wandb_url") or artifacts.get("wandb_run"):
        table.add_row("W&B", artifacts.get("wandb_url") or artifacts.get("wandb_run"))
    finished = _when(view.get("finished_at"))
    created = _when(view.get("created_at"))
    if finished and created:
        table.add_row("Wall time", duration((finished - created).total_seconds()))
    table.add_row("Cost", cost_line(view.get("cost", {})))
    split = split_line(view.get("cost", {}))
    if split:
        table.add_row("Where it went", split)
    attempts = view.get("attempts", [])
    if len(attempts) > 1:
        table.add_row("Executions", ", ".join(f"#{a['number']} {a['why']}" + _at_batch(a) for a in attempts))
    if view.get("error"):
        table.add_row("Error", Text(f"{view['error']['reason']}: {view['error']['message']}", style="red"))
    stop = view.get("cancel") or {}
    if stop.get("by") == "budget":  # its cost cap or a budget (orchestrator/domain/cost_cap.py)
        table.add_row("Stopped", Text(f"{stop.get('detail') or 'by a budget'}; `laxai retry` continues from "
                                      "its checkpoint", style="yellow"))
    return table


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """One line per job; full task ids (the other commands take them), the name last so it can wrap."""
    table = Table(Column("task_id", no_wrap=True), Column("status", no_wrap=True), Column("epoch", no_wrap=True),
                  Column("mAP50-95", no_wrap=True), Column("cost", no_wrap=True, min_width=7), Column("name", overflow="fold"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for job in jobs:
        p = job["progress"]
        table.add_row(job["task_id"], Text(job["status"], style=STYLE.get(job["status"], "")),
                      f"{p['epoch']}/{p['total_epochs']}",
                      f"{job['metrics']['mAP50-95']:.3f}" if "mAP50-95" in job.get("metrics", {}) else "-",
                      format_usd(job["cost"].get("usd", 0.0)), job.get("custom_name") or "")
    return table


def _at_batch(attempt: dict) -> str:
    """' at batch 8' for an execution that ran out of memory (retried with half: orchestrator/domain/oom.py)."""
    if attempt.get("why") != "out_of_memory" or not attempt.get("batch_size"):
        return ""
    return f" at batch {attempt['batch_size']}"
