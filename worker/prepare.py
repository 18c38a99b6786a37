"""Preparing one attempt: its parts, each built once, in the order the attempt needs them.

- ``Context``: what the process knows before it reads the job (settings, backend, the gated
  store every write goes through, task id, attempt number, stop flags, the SIGTERM handler).
- ``setup``, before the attempt is marked started: the offline environment, the device and
  its prices, the checkpoint to resume from. It raises ``SetupFailed`` and the runner fails
  the job at once (worker/outcome.py names the reason: ``gpu_unavailable``, ``bad_weights``...).
- ``open_attempt``, right after the start write: the time budget, the heartbeat, progress and
  upload threads (started) and the W&B run, all in one frozen ``Attempt`` that the training
  step and the closing paths (worker/closing.py) share.
- ``inputs``, in the training step: the dataset and the starting weights, checked. Their errors
  end the attempt through the closing paths (they come after the start write, and generating
  a large synthetic dataset honours stop requests, which the threads raise).

Nothing here is filled in later: what may be absent (no resume point, no estimate, no
starting weights) is an explicit None from the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.domain.cost import Rates
from orchestrator.domain.job import CostSummary, Job
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import cost_of
from orchestrator.launchers.local import log_path
from worker import checkpoints, datasets, offline, signals
from worker.checkpoints import CheckpointUploader, ResumePoint
from worker.gate import GatedStore, WriteGate
from worker.reporter import Heartbeat, Liveness, ProgressReporter
from worker.stop import Budget, CostMeter, StopCheck, StopFlags, StopReason
from worker.timing import TrainingClock
from worker.wandb_log import WandbRun

if TYPE_CHECKING:  # imported at run time only after worker.offline.prepare()
    from worker.training import Device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What an attempt works with before its job is read."""

    settings: Settings
    backend: Backend
    store: GatedStore  # the job's store behind the process's one write gate (worker/gate.py)
    task_id: str
    number: int  # the attempt number: the fencing token of every write
    flags: StopFlags
    process_started: float  # time.monotonic() at process start: the platform's per-execution clock
    handler: signals.Handler | None = None  # the SIGTERM handler, re-installed once W&B has started

    @classmethod
    def open(cls, settings: Settings, backend: Backend, task_id: str, number: int, flags: StopFlags,
             process_started: float, handler: signals.Handler | None = None) -> Context:
        """A context whose store writes through a new WriteGate (the threads will share it)."""
        store = GatedStore(backend.store, WriteGate(settings.write_gap))
        return cls(settings, backend, store, task_id, number, flags, process_started, handler)

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def run_dir(self) -> Path:
        """$LAXAI_HOME/runs/<task_id>: the checked data.yaml, starting weights, Ultralytics' run."""
        return self.home / "runs" / self.task_id

    @property
    def log_file(self) -> Path:
        """The job's own output (local launcher), whose tail a failure shows."""
        return log_path(self.home, self.task_id)


@dataclass(frozen=True)
class Pricing:
    """What the attempt's seconds cost: the hardware it runs on, and after a fall-back to the CPU
    what the same seconds would cost on the GPU the job asked for (``estimate``)."""

    rates: Rates
    estimate: Rates | None = None

    def cost(self, job: Job) -> CostSummary:
        return cost_of(job, self.rates, self.estimate)


@dataclass(frozen=True)
class Setup:
    """What preparation found before the start write."""

    device: Device
    pricing: Pricing
    resume: ResumePoint | None  # the stored last.pt training continues from; None: a fresh start

    @property
    def start_epoch(self) -> int:
        return self.resume.epochs_done if self.resume else 0


class SetupFailed(Exception):
    """Preparation failed with ``cause``; ``pricing`` is known when the device was picked first."""

    def __init__(self, cause: Exception, pricing: Pricing | None):
        super().__init__(str(cause))
        self.cause, self.pricing = cause, pricing


def setup(ctx: Context, job: Job) -> Setup:
    """Offline environment, device, prices and resume point (before the attempt is marked started)."""
    try:
        device = _device(ctx, job)
        pricing = _pricing(ctx.settings, job, device)
    except Exception as exc:  # noqa: BLE001 - e.g. no GPU, a bad YOLO_DEVICE: the runner says why
        raise SetupFailed(exc, None) from exc
    weights = ctx.run_dir / "train" / "weights"  # where Ultralytics will look for last.pt
    try:
        resume = checkpoints.fetch_resume(ctx.backend.artifacts, ctx.task_id, weights)
        if resume is None and job.resume_from:  # a Retry of a job stopped for its cost: go on from its last.pt
            resume = checkpoints.fetch_resume(ctx.backend.artifacts, job.resume_from, weights)
    except Exception as exc:  # noqa: BLE001 - our own last.pt refused by the safe loader
        raise SetupFailed(exc, pricing) from exc
    return Setup(device, pricing, resume)


def _device(ctx: Context, job: Job) -> Device:
    offline.prepare(ctx.home)
    import ultralytics  # noqa: F401 - after prepare(): reads the offline switches at import

    offline.configure_ultralytics(ctx.home)
    from worker.training import pick_device

    # A job that asked for the CPU never needs a GPU; otherwise REQUIRE_GPU (on by default on Cloud Run).
    required = ctx.settings.require_gpu and job.spec.gpu_type != "cpu"
    return pick_device(ctx.settings, require_gpu=required)


def _pricing(settings: Settings, job: Job, device: Device) -> Pricing:
    configured = job.spec.gpu_type or settings.GPU_TYPE
    if device.is_gpu:
        return Pricing(settings.rates(configured))
    # Billed as CPU hardware, with what the same seconds would cost on the configured GPU.
    return Pricing(settings.rates("cpu"), settings.rates(configured))


@dataclass(frozen=True)
class Background:
    """The attempt's threads: the lease heartbeat, the progress reporter, the checkpoint uploader; and the
    training clock the reporter stamps on the attempt (worker/timing.py)."""

    heartbeat: Heartbeat
    reporter: ProgressReporter
    uploader: CheckpointUploader

    @property
    def clock(self) -> TrainingClock:
        return self.reporter.clock

    @classmethod
    def of(cls, ctx: Context, pricing: Pricing) -> Background:
        s = ctx.settings
        alive = Liveness()  # progress writes extend the lease, so the heartbeat beats only in their gaps
        return cls(
            Heartbeat(ctx.store, ctx.task_id, ctx.number, s.LEASE_SECONDS, ctx.flags, cancel_poll=s.CANCEL_POLL_SECONDS,
                      liveness=alive),
            ProgressReporter(ctx.store, ctx.task_id, ctx.number, s.PROGRESS_INTERVAL, ctx.flags, cost=pricing.cost,
                             clock=TrainingClock(), liveness=alive, lease_seconds=s.LEASE_SECONDS),
            CheckpointUploader(ctx.backend.artifacts, ctx.task_id, ctx.run_dir / f".staging-{ctx.number}", ctx.flags,
                               ctx.number),
        )

    def start(self) -> None:
        self.heartbeat.start()
        self.reporter.start()
        self.uploader.start()

    def stop(self, flags: StopFlags, flush: bool, upload_wait: float = 0.0, keep_heartbeat: bool = False) -> None:
        """Stop the threads (idempotent): progress flushed if asked, uploads given ``upload_wait`` seconds;
        the heartbeat too unless ``keep_heartbeat`` (it then runs until the closing write)."""
        self.reporter.stop(flush=flush)
        if upload_wait > 0 and not flags.lost and not self.uploader.drain(upload_wait):
            log.warning("checkpoint upload still pending after %.0f s; resuming from an older one", upload_wait)
        self.uploader.stop()
        if not keep_heartbeat:
            self.heartbeat.stop()


@dataclass(frozen=True)
class Attempt:
    """One started attempt's parts, fixed from the start write to the closing write."""

    ctx: Context
    job: Job  # as the start write left it
    setup: Setup
    budget: Budget
    background: Background
    wandb: WandbRun

    @property
    def stop_check(self) -> StopCheck:
        return StopCheck(self.ctx.flags, self.budget, self.meter)

    @property
    def meter(self) -> CostMeter:
        """The job's cost so far against its ``max_cost_usd``, priced as the closing write will price it."""
        return CostMeter(self.job.spec.max_cost_usd, self.budget.prior_seconds, self.ctx.process_started,
                         self.setup.pricing.rates.per_second)


def open_attempt(ctx: Context, job: Job, found: Setup) -> Attempt:
    """The started attempt's parts, its threads running (right after the start write)."""
    budget = budget_for(ctx, job)
    background = Background.of(ctx, found.pricing)
    background.start()
    if job.status is JobStatus.CANCELLING:
        ctx.flags.set(StopReason.CANCEL)
    wandb = WandbRun.start(ctx.settings, job, found.device.description)  # never raises: W&B never fails a job
    return Attempt(ctx, job, found, budget, background, wandb)


def budget_for(ctx: Context, job: Job) -> Budget:
    """This attempt's time limits: TRAINING_TIMEOUT over all attempts, and the continuation deadline.
    Both count from the process's start, as billing (the earlier attempts' billed seconds) and the
    platform's per-execution clock do: start-up and imports use the job's time too."""
    settings = ctx.settings
    continue_after = None
    if settings.TASK_TIMEOUT > 0:
        continue_after = settings.TASK_TIMEOUT - settings.TASK_TIMEOUT_MARGIN
    prior = sum(a.billed_seconds for a in job.attempts[:-1])
    return Budget(started=ctx.process_started, prior_seconds=prior, training_timeout=settings.TRAINING_TIMEOUT,
                  continue_after=continue_after)


@dataclass(frozen=True)
class Inputs:
    """What training reads: a sanitised data.yaml and the checked starting weights (None: none given,
    or resuming from last.pt)."""

    data_yaml: Path
    weights: Path | None


def inputs(attempt: Attempt, stop: StopCheck) -> Inputs:
    """The dataset and starting weights, checked; raises DatasetError or BadWeights."""
    ctx, job = attempt.ctx, attempt.job
    # Generating a large synthetic dataset takes a while: stop requests are honoured between images.
    # The tenant's dataset is checked against its data roots again (the service did at submit)
    # and Ultralytics gets a sanitised copy of its data.yaml, in this job's run directory.
    data_yaml = datasets.resolve(job.spec, ctx.home, check=stop.check, backend=ctx.backend.name,
                                 access=datasets.DataAccess.of(ctx.settings, job.tenant_id), out_dir=ctx.run_dir)
    datasets.check(data_yaml)
    return Inputs(data_yaml, _starting_weights(attempt))


def _starting_weights(attempt: Attempt) -> Path | None:
    """model_params.weights as a checked local file (None when not given, or when resuming from last.pt)."""
    ctx, job = attempt.ctx, attempt.job
    text = job.spec.model_params.weights
    if not text or attempt.setup.resume is not None:
        return None
    tenant = job.tenant_id
    return checkpoints.fetch_weights(text, tenant, ctx.backend, ctx.settings.data_roots(tenant),
                                     ctx.home / "weights", ctx.run_dir / "start-weights.pt")
