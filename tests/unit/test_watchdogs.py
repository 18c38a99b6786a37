"""The watchdogs' pure parts: the stall watch's timing, the loss check and its hint, the test-fault
switch, and what ``diverged`` and ``stalled`` do to a job (worker/watchdog.py, worker/inject.py).
The real runs are in tests/worker/test_worker_watchdogs.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from orchestrator.config import load_settings
from orchestrator.domain.cost import rates_for
from orchestrator.domain.job import EndReason, Job, JobError, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, finish, requeue, worker_started
from worker import inject
from worker.watchdog import Diverged, StallWatch, divergence_hint, loop_steps, non_finite_loss

RATES = rates_for("cpu", 0, "4000m", "16Gi")


class Fired:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.event = threading.Event()

    def __call__(self, idle: float) -> None:
        self.calls.append(idle)
        self.event.set()


def test_the_stall_watch_fires_once_after_the_limit_without_beats():
    fired = Fired()
    watch = StallWatch(0.2, fired, poll=0.02)
    watch.start()
    assert fired.event.wait(2)
    time.sleep(0.1)  # five more polls past the limit: it must not fire again
    watch.stop()
    assert len(fired.calls) == 1 and fired.calls[0] >= 0.2 and watch.fired


def test_beats_keep_the_stall_watch_quiet_and_stop_disarms_it():
    fired = Fired()
    watch = StallWatch(0.3, fired, poll=0.02)
    watch.start()
    for _ in range(12):  # 0.6 s of a loop that moves every 0.05 s
        time.sleep(0.05)
        watch.beat()
    watch.stop()
    time.sleep(0.4)  # stopped: no beats any more, and still nothing fires
    assert fired.calls == [] and not watch.fired


def run_steps(watch: StallWatch, event: str, stop: bool = False) -> None:
    """Ultralytics calling the loop-step callbacks of ``event`` (``stop``: the loop ends after this epoch)."""
    for name, callback in loop_steps(watch):
        if name == event:
            callback(SimpleNamespace(stop=stop))


def test_the_watch_rests_only_from_the_last_epochs_end_to_the_final_validation():
    between_epochs, final_setup = Fired(), Fired()
    watches = [StallWatch(0.3, fired, poll=0.02) for fired in (between_epochs, final_setup)]
    for watch in watches:
        watch.start()
    run_steps(watches[0], "on_fit_epoch_end")  # an epoch like the others ended: still watched
    run_steps(watches[1], "on_fit_epoch_end", stop=True)  # the last one: checkpoints stripped, best.pt loaded
    time.sleep(0.6)
    assert between_epochs.calls and final_setup.calls == []  # a slow final set-up is not a stall
    run_steps(watches[1], "on_val_start")  # the final validation began: a hang in it is one
    assert final_setup.event.wait(2) and final_setup.calls[0] >= 0.3
    for watch in watches:
        watch.stop()


def test_the_default_poll_is_a_sixth_of_the_limit_within_bounds():
    assert StallWatch(600, print).poll == 5.0
    assert StallWatch(3, print).poll == 0.5
    assert StallWatch(0.1, print).poll == 0.05


class FakeLoss:
    """Stands in for a torch tensor (detach().sum() -> a number)."""

    def __init__(self, value: float):
        self.value = value

    def detach(self) -> FakeLoss:
        return self

    def sum(self) -> float:
        return self.value


@pytest.mark.parametrize("trainer, bad", [
    (SimpleNamespace(loss=FakeLoss(1.5)), None),
    (SimpleNamespace(loss=FakeLoss(float("nan"))), "nan"),
    (SimpleNamespace(loss=FakeLoss(float("inf"))), "inf"),
    (SimpleNamespace(loss=None, tloss={"box": 1.0, "cls": float("-inf")}), "-inf"),
    (SimpleNamespace(loss=None, tloss=None), None),
    (SimpleNamespace(), None),
])
def test_non_finite_loss(trainer, bad):
    found = non_finite_loss(trainer)
    assert (None if found is None else str(found)) == bad


def test_the_divergence_message_says_where_and_what_to_change():
    message = str(Diverged(float("nan"), 3, 7, 0.001, 16))
    assert message == ("the training loss became nan at epoch 3, batch 7; lower the learning rate (learning_rate "
                       "0.001, e.g. 0.0005) or use a smaller batch (batch_size 16, e.g. 8), then retry")
    assert "batch_size" not in divergence_hint(0.01, 1)  # no smaller batch than one


def test_test_faults_are_off_unless_asked_and_malformed_items_are_refused():
    assert inject.items({}) == {} and inject.callbacks(1, {}) == []
    assert inject.items({inject.VARIABLE: " nan_loss_at_batch:3, other:2 "}) == {"nan_loss_at_batch": 3, "other": 2}
    for bad in ("nan_loss_at_batch", "hang_at_batch:0", "hang_at_batch:x", ":3"):
        with pytest.raises(ValueError, match=inject.VARIABLE):
            inject.items({inject.VARIABLE: bad})


def test_the_hang_fault_hits_only_the_first_attempt():
    env = {inject.VARIABLE: "hang_at_batch:2"}
    assert [event for event, _ in inject.callbacks(1, env)] == ["on_train_batch_start", "on_train_batch_end"]
    assert [event for event, _ in inject.callbacks(2, env)] == ["on_train_batch_start"]  # only the counter


def test_the_nan_fault_poisons_a_weight_before_its_batch_only():
    import torch  # the worker extra, installed by make test

    model = torch.nn.Linear(2, 1)
    trainer = SimpleNamespace(model=model)
    (_, count), (_, poison) = inject.callbacks(1, {inject.VARIABLE: "nan_loss_at_batch:2"})
    count(trainer), poison(trainer)
    assert torch.isfinite(model.weight).all()
    count(trainer), poison(trainer)
    assert torch.isnan(model.weight).all()


def running(epochs: int = 4) -> Job:
    job = Job(tenant_id="acme", spec=JobSpec(tenant_id="acme", dataset="synthetic:16",
                                             training_params={"epochs": epochs}))
    now = utcnow()
    job = claim(job, now, 600)
    return worker_started(job, job.current_attempt.number, now, 60, "cpu", job.progress.epoch)


def test_a_stalled_attempt_resumes_and_counts_as_a_recovery_until_max_recoveries():
    assert EndReason.STALLED.resumes and EndReason.STALLED.counts_as_recovery
    job = running()
    for number in (1, 2):
        job = requeue(job, number, EndReason.STALLED, utcnow(), RATES, max_recoveries=1, detail="no batch")
        if number == 1:
            assert job.status is JobStatus.QUEUED and job.recoveries == 1
            assert job.progress.message.startswith("Stalled (no batch finished) at epoch 0/")
            job = worker_started(claim(job, utcnow(), 600), 2, utcnow() + timedelta(seconds=1), 60, "cpu", 0)
    assert job.status is JobStatus.FAILED and job.error.reason == "too_many_recoveries"
    assert "last: stalled (no batch)" in job.error.message


def test_a_diverged_attempt_fails_the_job_without_a_retry():
    assert not EndReason.DIVERGED.resumes and not EndReason.DIVERGED.counts_as_recovery
    job = running()
    error = JobError(reason="diverged", message="the training loss became nan at epoch 1, batch 2; ...")
    done = finish(job, 1, EndReason.DIVERGED, utcnow(), RATES, error=error, detail=error.message)
    assert done.status is JobStatus.FAILED and done.error.reason == "diverged"
    assert done.status_view()["attempts"][0]["why"] == "diverged"
    assert requeue(job, 1, EndReason.DIVERGED, utcnow(), RATES, 3) is None  # never back to the queue


def test_stall_seconds_defaults_to_ten_minutes_and_a_bad_value_names_the_variable(tmp_path):
    assert load_settings(LAXAI_HOME=tmp_path).STALL_SECONDS == 600
    assert load_settings(LAXAI_HOME=tmp_path, STALL_SECONDS="3").STALL_SECONDS == 3
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValidationError, match="STALL_SECONDS"):
            load_settings(LAXAI_HOME=tmp_path, STALL_SECONDS=bad)
