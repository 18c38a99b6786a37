"""The `laxai` command line: run the service, submit and follow jobs, and the demo."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from orchestrator.cli import cost_views
from orchestrator.cli import demo as demo_view
from orchestrator.cli import model_views
from orchestrator.cli import views as cli_views
from orchestrator.cli.client import ClientError, LaxaiClient
from orchestrator.cli.model_views import ModelsGroup
from orchestrator.config import Settings, load_settings, local_token

app = typer.Typer(help="LaxAI Train: YOLO training jobs on your laptop or Google Cloud.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(cls=ModelsGroup, no_args_is_help=False,
                         help="The model registry: `laxai models [NAME]` lists versions and aliases; "
                              "`laxai models promote NAME vN` sets production.")
app.add_typer(models_app, name="models")
console = Console()
err = Console(stderr=True)

UrlOpt = Annotated[Optional[str], typer.Option("--url", help="Service URL (default: LAXAI_URL or the local service)")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="API token (default: LAXAI_TOKEN or the local one)")]


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # pydantic ValidationError: name the variable
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _client(url: str | None, token: str | None) -> LaxaiClient:
    settings = _settings()
    url = url or settings.LAXAI_URL or f"http://127.0.0.1:{settings.PORT}"
    token = token or os.environ.get("LAXAI_TOKEN")
    if not token and (settings.home / "api-token").exists():
        token = (settings.home / "api-token").read_text().strip()
    return LaxaiClient(url, token)


def _fail(exc: ClientError) -> None:
    err.print(f"[red]error:[/red] {exc.message}")
    if isinstance(exc.detail, list):
        for problem in exc.detail:
            err.print(f"  - {problem.get('field') or 'body'}: {problem.get('message')}")
    raise typer.Exit(1 if exc.status == 0 or exc.status >= 500 else 2)


def _call(fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        _fail(exc)


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
          port: Annotated[Optional[int], typer.Option(help="Port (default: $PORT or 8080)")] = None,
          socket_mode: Annotated[bool, typer.Option("--socket-mode", help="Slack over Socket Mode")] = False,
          backend: Annotated[Optional[str], typer.Option(help="local or gcp (default: LAXAI_BACKEND)")] = None,
          log_level: Annotated[str, typer.Option(help="Log level")] = "info") -> None:
    """Run the REST API, the dispatcher and the Slack bot (when configured)."""
    from rich.markup import escape

    from orchestrator.logs import configure_logging
    from orchestrator.serve import StartupError, build_server, settle_heap

    if backend:
        os.environ["LAXAI_BACKEND"] = backend
    settings = _settings()
    configure_logging(log_level)
    port = port or settings.PORT
    try:
        server = build_server(settings, host, port, socket_mode=socket_mode, log_level=log_level.lower())
    except StartupError as exc:
        err.print(f"[red]laxai serve cannot start:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    runtime = server.config.app.state.runtime
    console.print(f"LaxAI Train on http://{host}:{port}  backend={settings.LAXAI_BACKEND}  "
                  f"state={settings.home if settings.LAXAI_BACKEND == 'local' else settings.GOOGLE_CLOUD_PROJECT}")
    console.print(f"extensions: {', '.join(runtime.extensions) or 'none'}")
    if settings.LAXAI_API_TOKENS is None:
        console.print(f"local API token (also in {settings.home / 'api-token'}): {local_token(settings.home)}")
    settle_heap()
    server.run()


def _spec_body(epochs, batch_size, lr, arch, imgsz, dataset, gpu, name, tags, priority, weights,
               max_cost=None) -> dict[str, Any]:
    training = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr}.items()
                if v is not None}
    model = {k: v for k, v in {"architecture": arch, "input_size": imgsz, "weights": weights}.items() if v is not None}
    body: dict[str, Any] = {"training_params": training, "model_params": model}
    for key, value in {"dataset": dataset, "gpu_type": gpu, "custom_name": name, "priority": priority,
                       "max_cost_usd": max_cost}.items():
        if value is not None:
            body[key] = value
    if tags:
        body["wandb_tags"] = tags
    return body


@app.command()
def submit(epochs: Annotated[Optional[int], typer.Option(help="1-1000")] = None,
           batch_size: Annotated[Optional[int], typer.Option("--batch-size", "--batch", help="1-1024")] = None,
           lr: Annotated[Optional[float], typer.Option("--lr", help="0 < lr <= 1")] = None,
           arch: Annotated[Optional[str], typer.Option(help="yolo11n (alias yolo), yolov8n, ...")] = None,
           imgsz: Annotated[Optional[int], typer.Option(help="multiple of 32, 32-2048")] = None,
           dataset: Annotated[Optional[str], typer.Option(help="synthetic, synthetic:N, data.yaml, dir")] = None,
           gpu: Annotated[Optional[str], typer.Option(help="nvidia-l4 or cpu: what the deployment offers")] = None,
           name: Annotated[Optional[str], typer.Option(help="a name for the run")] = None,
           tag: Annotated[Optional[list[str]], typer.Option(help="W&B tag (repeatable)")] = None,
           priority: Annotated[Optional[int], typer.Option(help="0-9, higher first")] = None,
           weights: Annotated[Optional[str], typer.Option(help="start from this .pt")] = None,
           max_cost: Annotated[Optional[float], typer.Option(
               "--max-cost", help="USD: stop at the first checkpoint once the job has cost this much")] = None,
           idempotency_key: Annotated[Optional[str], typer.Option(help="retry-safe submission key")] = None,
           wait: Annotated[bool, typer.Option("--wait", help="follow until it finishes")] = False,
           url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Submit a training job; prints its task_id (and its estimate, on stderr)."""
    client = _client(url, token)
    body = _spec_body(epochs, batch_size, lr, arch, imgsz, dataset, gpu, name, tag, priority, weights, max_cost)
    result = _call(client.submit, body, idempotency_key)
    console.print(result["task_id"])
    estimate = cli_views.estimate_line(result.get("estimate"))
    if estimate:  # on stderr: stdout stays the task_id alone, for scripts (TASK=$(laxai submit ...))
        err.print(estimate, markup=False, highlight=False, soft_wrap=True)
    held = cli_views.approval_line(result.get("approval"))
    if held:  # over a budget: it waits for an admin (orchestrator/domain/budget.py)
        err.print(held, markup=False, highlight=False, soft_wrap=True)
    if wait:
        _follow(client, result["task_id"])


def _follow(client: LaxaiClient, task_id: str) -> dict[str, Any]:
    view = cli_views.watch(lambda: _call(client.status, task_id), console)
    console.print(cli_views.summary(view))
    if view["status"] != "completed":
        raise typer.Exit(1)
    return view


@app.command()
def status(task_id: str, watch: Annotated[bool, typer.Option("--watch", "-w", help="live until it ends")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="raw JSON")] = False,
           plot: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE", dir_okay=False,
                                                        help="also write its training curves (PNG) to FILE")] = None,
           url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Show one job (the seed's status format with --json)."""
    client = _client(url, token)
    if watch:
        try:
            _follow(client, task_id)
        except typer.Exit:  # it ended, not completed: a failed or cancelled job has curves too
            if plot is not None:
                _write_plot(client, task_id, plot)
            raise
        if plot is not None:  # Ctrl-C (exit 130) skips this: the job has not ended
            _write_plot(client, task_id, plot)
        return
    view = _call(client.status, task_id)
    if as_json:
        console.print_json(json.dumps(view))
    else:
        console.print(cli_views.summary(view))
        console.print(cli_views.progress_line(view), "-", view["progress"]["message"])
    if plot is not None:
        _write_plot(client, task_id, plot)


def _write_plot(client: LaxaiClient, task_id: str, path: Path) -> None:
    """The job's curves into ``path`` (said on stderr, so stdout stays the status or its JSON)."""
    png = _call(client.plot, task_id)
    try:
        path.write_bytes(png)
    except OSError as exc:
        err.print(f"[red]error:[/red] --plot: cannot write {path} ({exc.strerror or exc})")
        raise typer.Exit(2) from None
    err.print(f"Training curves written to {path} ({len(png) // 1024 + 1} KB)")


@app.command("list")
def list_jobs(status: Annotated[Optional[list[str]], typer.Option(help="filter (repeatable)")] = None,
              limit: int = 20, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Your recent jobs."""
    console.print(cli_views.jobs_table(_call(_client(url, token).jobs, status, limit)))


@app.command()
def cancel(task_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Cancel a job (a running one stops within a batch and keeps its checkpoint)."""
    result = _call(_client(url, token).cancel, task_id)
    console.print(f"{task_id}: {result['status']}" + ("" if result["changed"] else " (nothing to cancel)"))


@app.command()
def approve(task_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Let a job held by a budget run (an admin's token: token:tenant:admin)."""
    console.print(f"{task_id}: {_call(_client(url, token).approve, task_id)['status']}")


@app.command()
def reject(task_id: str, reason: Annotated[Optional[str], typer.Option(help="why, shown with the job")] = None,
           url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Refuse a job held by a budget: it ends cancelled with the reason (an admin's token)."""
    console.print(f"{task_id}: {_call(_client(url, token).reject, task_id, reason)['status']}")


@app.command()
def retry(task_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Run a finished job again with the same spec; prints the new task_id."""
    console.print(_call(_client(url, token).retry, task_id)["task_id"])


@app.command()
def costs(period: Annotated[str, typer.Option(help="week or month (UTC calendar)")] = "month",
          as_json: Annotated[bool, typer.Option("--json", help="raw JSON")] = False,
          url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Your spend this week or month: by user, channel, architecture and GPU, with budgets and what is left."""
    result = _call(_client(url, token).costs, period)
    if as_json:
        console.print_json(json.dumps(result))
    else:
        console.print(cost_views.report(result))


@app.command()
def logs(task_id: str, tail: int = 200,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
         url: UrlOpt = None, token: TokenOpt = None) -> None:
    """The worker's output for a job."""
    client = _client(url, token)
    seen: list[str] = []
    while True:
        lines = _call(client.logs, task_id, tail)
        for line in lines[_overlap(seen, lines):]:
            console.print(line, markup=False, highlight=False)
        seen = lines
        if not follow or _call(client.status, task_id)["status"] in cli_views.TERMINAL:
            return
        time.sleep(1)


def _overlap(before: list[str], after: list[str]) -> int:
    """How many leading lines of ``after`` were already the tail of ``before``."""
    for size in range(min(len(before), len(after)), 0, -1):
        if before[-size:] == after[:size]:
            return size
    return 0


@models_app.command("list")
def models_list(model: Annotated[Optional[str], typer.Argument(help="only this model name")] = None,
                name: Annotated[Optional[str], typer.Option(help="only this model name")] = None,
                as_json: Annotated[bool, typer.Option("--json", help="raw JSON")] = False,
                url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Registered model versions, newest first, with their aliases (`laxai models [NAME]` for short)."""
    listing = _call(_client(url, token).model_listing, model or name)
    if as_json:
        console.print_json(json.dumps(listing))
    else:
        console.print(model_views.models_table(listing))


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="the model name")],
                   version: Annotated[str, typer.Argument(help="the version: v3 or 3")],
                   alias: Annotated[str, typer.Option(help="the alias to set")] = "production",
                   url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Point production (or --alias) at one version: an admin's token, or the tenant's for its own API/CLI runs."""
    console.print(model_views.promoted(_call(_client(url, token).promote, name, version, alias)))


@app.command()
def demo(epochs: Annotated[int, typer.Option(help="epochs to train")] = demo_view.EPOCHS,
         imgsz: Annotated[int, typer.Option(help="input size")] = demo_view.INPUT_SIZE,
         arch: Annotated[str, typer.Option(help="architecture")] = demo_view.ARCHITECTURE,
         dataset: Annotated[str, typer.Option(help="dataset")] = demo_view.DATASET,
         batch_size: Annotated[int, typer.Option("--batch-size", "--batch", help="batch size")] = demo_view.BATCH_SIZE,
         lr: Annotated[float, typer.Option("--lr", help="learning rate (AdamW)")] = demo_view.LEARNING_RATE) -> None:
    """Start the local service, train a small model from scratch on generated shapes (mAP50 rises from 0
    to over 0.9 in about a minute on a laptop CPU), print each epoch's mAP and a summary."""
    from orchestrator.serve import ServiceThread
    from orchestrator.logs import configure_logging

    os.environ.setdefault("WANDB_MODE", "offline")
    settings = _settings()
    if settings.LAXAI_BACKEND != "local":
        err.print("[red]laxai demo runs on the local backend; unset LAXAI_BACKEND[/red]")
        raise typer.Exit(2)
    configure_logging("WARNING")
    console.print(f"[bold]LaxAI Train demo[/bold]: local service, state in {settings.home}")
    with ServiceThread(settings) as service:
        client = LaxaiClient(service.url, next(iter(settings.api_tokens)))
        body = _spec_body(epochs, batch_size, lr, arch, imgsz, dataset, None, "demo", ["demo"], None, None)
        submitted = _call(client.submit, body)
        console.print(f"submitted {submitted['task_id']} ({arch} from scratch, {epochs} epochs, imgsz {imgsz}, "
                      f"batch {batch_size}, lr {lr:g}, {dataset}); queued -> dispatched -> training")
        epochs_seen = demo_view.EpochLines(console)
        view = cli_views.watch(lambda: _call(client.status, submitted["task_id"]), console, on_view=epochs_seen)
        console.print(cli_views.summary(view))
        learned = demo_view.learned_line(epochs_seen.seen, view.get("metrics", {}))
        if learned:
            console.print(learned, highlight=False)
        if view["status"] != "completed":
            for line in _call(client.logs, submitted["task_id"], 20):
                err.print(line, markup=False, highlight=False)
            raise typer.Exit(1)


def main() -> None:
    app(prog_name="laxai")


if __name__ == "__main__":
    sys.exit(main())
