"""The Bolt app: /train, the card's buttons and the form's submission.

Every listener answers inside Slack's 3 seconds: it validates, calls JobService
(store + queue) and acks. The command path makes no Web API call except
views.open for the form (its trigger_id expires in 3 s); cards and threads are
the notifier's job. Buttons may answer a refused click with chat.postEphemeral.

Who is who: the tenant is the Slack team (the enterprise on Enterprise Grid),
the submitter is the user id, and idempotency keys come from the request
(trigger_id, view id, message ts), so a repeated delivery or a double click
submits one job.

Who may see and do what (channel, submitter, admins, allowed channels) is
``bot.access``; every listener asks it before touching a job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import Job, Origin
from orchestrator.runtime import Runtime
from orchestrator.service import Conflict, NotFound, QueueFull
from orchestrator.stores.base import StoreError

from bot import blocks, commands, modal
from bot.access import Access, Caller, JobLookupError
from bot.clients import bolt_client, guarded_logger
from bot.config import SlackSettings
from bot.options import OptionErrors, build_spec, spec_error_to_options, typed_names

log = logging.getLogger(__name__)

SLOW_ACK = 2.0  # seconds; past this an ack is logged as slow (Slack gives up at 3)
GONE = "That job no longer exists."


def idempotency_key(*parts: object) -> str:
    return "slack:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]


class SlackFrontEnd:
    """Builds the Bolt App over a Runtime's JobService."""

    def __init__(self, runtime: Runtime, settings: SlackSettings, client: WebClient):
        self.service = runtime.service
        self.settings = settings
        self.access = Access(self.service, settings)
        self.default_gpu = runtime.settings.GPU_TYPE
        self.client = client  # bot token; for views.open and ephemeral refusals
        self.identity: dict[str, Any] = {}
        bolt_logger = guarded_logger("bot.slack.bolt", settings)
        bolt_logger.addFilter(_QuietTokenWarning())
        self.app = App(
            client=bolt_client(settings),
            signing_secret=settings.signing_secret,
            process_before_response=True,  # answer only after the listener ran: nothing runs after the response
            authorize=self._authorize_fn(),  # no auth.test in the request path
            logger=bolt_logger,
            raise_error_for_unhandled_request=False,
        )
        # Bolt injects listener arguments by parameter name and trips over ``self``, so
        # each listener is registered as a plain function calling the method.
        app = self.app
        app.command(re.compile(r"^/"))(lambda ack, body: self.on_command(ack, body))  # /train, or a renamed one
        app.action(blocks.CANCEL_ACTION)(lambda ack, body, action: self.on_cancel(ack, body, action))
        app.action(blocks.RETRY_ACTION)(lambda ack, body, action: self.on_retry(ack, body, action))
        app.action(blocks.WANDB_ACTION)(lambda ack: self.on_link(ack))
        app.view(modal.CALLBACK_ID)(lambda ack, body, view: self.on_submit(ack, body, view))
        app.error(lambda error: self.on_error(error))

    # -- identity -----------------------------------------------------------------

    def fetch_identity(self) -> None:
        """auth.test once, off the request path (start-up); tells the bot's own ids."""
        try:
            response = self.client.auth_test()
        except Exception as exc:  # noqa: BLE001 - Slack may be unreachable at start-up
            log.warning("Slack auth.test failed (%s); continuing without the bot's ids", exc)
            return
        self.identity = {k: response.get(k) for k in ("team_id", "user_id", "bot_id", "enterprise_id")}
        log.info("Slack bot is %s in team %s", self.identity.get("user_id"), self.identity.get("team_id"))

    def start(self) -> None:
        threading.Thread(target=self.fetch_identity, name="slack-auth-test", daemon=True).start()

    def _authorize_fn(self):  # noqa: ANN202 - Bolt reads the parameter names
        def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
            return self._authorize(enterprise_id, team_id, user_id)

        return authorize

    def _authorize(self, enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=self.settings.bot_token,
            bot_id=self.identity.get("bot_id"),
            bot_user_id=self.identity.get("user_id"),
            user_id=user_id,
        )

    # -- helpers ------------------------------------------------------------------

    def ephemeral(self, caller: Caller, text: str, thread_ts: str | None = None) -> None:
        """A note only the clicking user sees; failures are logged (the click itself went fine)."""
        message = blocks.notice(text)
        try:
            self.client.chat_postEphemeral(channel=caller.channel, user=caller.user, text=message.text,
                                           blocks=message.blocks, thread_ts=thread_ts, **blocks.NO_PARSING)
        except Exception as exc:  # noqa: BLE001
            log.warning("chat.postEphemeral to %s in %s failed: %s", caller.user, caller.channel, exc)

    # -- /train ---------------------------------------------------------------------

    def on_command(self, ack: Ack, body: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            reply = self.handle_command(body)
        except Exception:  # noqa: BLE001 - the user gets words, the log gets the trace
            log.exception("/train failed")
            reply = blocks.notice(":boom: Something went wrong on our side. Check `/train list` before trying again.")
        if reply is None:
            ack()
        else:
            ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
        elapsed = time.monotonic() - started
        if elapsed > SLOW_ACK:
            log.warning("/train took %.2fs to answer (Slack allows 3s)", elapsed)

    def handle_command(self, body: dict[str, Any]) -> blocks.Message | None:
        team = body.get("team_id") or ""
        caller = Caller(tenant=body.get("enterprise_id") or team, team=team, user=body.get("user_id") or "",
                        channel=body.get("channel_id") or "", request=body.get("trigger_id") or "")
        if not self.access.allowed(caller.channel):
            return blocks.notice(self.access.not_allowed_text())
        try:
            command = commands.parse(body.get("text") or "")
        except OptionErrors as exc:
            return blocks.errors_message(exc.errors)
        if isinstance(command, commands.OpenModal):
            return self.open_modal(caller, body.get("trigger_id"))
        if isinstance(command, commands.Help):
            return blocks.help_message()
        if isinstance(command, commands.Train):
            return self.submit(caller, command.values)
        if isinstance(command, commands.ListJobs):
            return blocks.list_message(self.service.list(caller.tenant, channel=caller.channel, limit=10))
        if isinstance(command, commands.Status):
            try:
                job = self.latest(caller) if command.ref is None else self.access.find(caller, command.ref)
            except JobLookupError as exc:
                return blocks.notice(f":mag: {exc}")
            return blocks.status_message(job, self.default_gpu)
        try:
            job = self.access.find(caller, command.ref)
        except JobLookupError as exc:
            return blocks.notice(f":mag: {exc}")
        if isinstance(command, commands.Cancel):
            return self.cancel(caller, job)
        return self.retry(caller, job, idempotency_key("retry-cmd", caller.tenant, caller.channel, caller.user,
                                                       caller.request))

    def latest(self, caller: Caller) -> Job:
        jobs = self.service.list(caller.tenant, channel=caller.channel, limit=1)
        if not jobs:
            raise JobLookupError("No jobs in this channel yet. Start one with `/train epochs=10 arch=yolo`.")
        return jobs[0]

    def open_modal(self, caller: Caller, trigger_id: str | None) -> blocks.Message | None:
        if not trigger_id:
            return blocks.notice(":warning: Slack sent no trigger to open the form; use `/train key=value`.")
        try:
            self.client.views_open(trigger_id=trigger_id, view=modal.view(caller.channel, self.default_gpu))
        except Exception as exc:  # noqa: BLE001 - say so rather than leave the user waiting
            log.warning("views.open failed: %s", exc)
            return blocks.notice(":warning: Couldn't open the form. Try `/train epochs=10 arch=yolo` instead.")
        return None

    def submit(self, caller: Caller, values: dict[str, tuple[str, str]]) -> blocks.Message:
        try:
            spec = build_spec(caller.tenant, values)
        except OptionErrors as exc:
            return blocks.errors_message(exc.errors)
        origin = Origin(source="slack", user=caller.user, team=caller.team, channel=caller.channel,
                        request_id=caller.request or None)
        key = idempotency_key("train", caller.tenant, caller.team, caller.channel, caller.user, caller.request) \
            if caller.request else None
        try:
            job, created = self.service.submit(spec, origin, idempotency_key=key)
        except SpecError as exc:
            return blocks.errors_message(spec_error_to_options(exc, typed_names(values)).errors)
        except QueueFull as exc:
            return blocks.notice(f":hourglass: Not submitted: {exc}.")
        except StoreError:
            log.exception("storing a /train job failed")
            return blocks.notice(":warning: The job store is unavailable right now; nothing was submitted. "
                                 "Try again in a minute.")
        log.info("/train by %s in %s: job %s (%s)", caller.user, caller.channel, job.task_id,
                 "created" if created else "repeat")
        return blocks.submitted(job, created)

    def cancel(self, caller: Caller, job: Job) -> blocks.Message:
        short = blocks.short_id(job.task_id)
        if not self.access.may_act(caller.user, job):
            return blocks.notice(self.access.refusal(job, "cancel"))
        job, changed = self.service.cancel(caller.tenant, job.task_id, by=caller.user)
        if changed:
            log.info("%s cancelled job %s", caller.user, job.task_id)
            return blocks.notice(f":octagonal_sign: Cancelling `{short}`; the thread will say when it has stopped.")
        if job.status.is_terminal():
            return blocks.notice(f"`{short}` has already {job.status.value}; nothing to cancel.")
        return blocks.notice(f"`{short}` is already being cancelled.")

    def retry(self, caller: Caller, job: Job, key: str) -> blocks.Message:
        if not self.access.may_act(caller.user, job):
            log.info("%s may not retry job %s (submitted by %s)", caller.user, job.task_id, job.origin.user)
            return blocks.notice(self.access.refusal(job, "retry"))
        origin = Origin(source="slack", user=caller.user, team=caller.team, channel=caller.channel,
                        request_id=caller.request or None)
        try:
            new = self.service.retry(caller.tenant, job.task_id, origin=origin, idempotency_key=key)
        except Conflict:
            return blocks.notice(f"`{blocks.short_id(job.task_id)}` is still {job.status.value}; "
                                 "only finished jobs can be retried.")
        except SpecError as exc:
            return blocks.errors_message(spec_error_to_options(exc).errors, "No retry was submitted.")
        except QueueFull as exc:
            return blocks.notice(f":hourglass: No retry was submitted: {blocks.escape(exc)}.")
        log.info("%s retried job %s as %s", caller.user, job.task_id, new.task_id)
        return blocks.notice(f":repeat: Retrying `{blocks.short_id(job.task_id)}` as `{blocks.short_id(new.task_id)}`;"
                             " it is announced in the original's thread.")

    # -- buttons ---------------------------------------------------------------------

    @staticmethod
    def _action_caller(body: dict[str, Any]) -> Caller:
        user = body.get("user") or {}
        team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
        enterprise = (body.get("enterprise") or {}).get("id") if isinstance(body.get("enterprise"), dict) else None
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        return Caller(tenant=enterprise or team, team=team, user=user.get("id") or "", channel=channel,
                      request=body.get("trigger_id") or "")

    @staticmethod
    def _thread_of(body: dict[str, Any]) -> str | None:
        container = body.get("container") or {}
        message = body.get("message") or {}
        return container.get("thread_ts") or message.get("thread_ts")

    def on_cancel(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()  # sent when this returns (process_before_response); the work below is quick
        caller = self._action_caller(body)
        task_id = str(action.get("value") or "")
        thread = self._thread_of(body)
        job = self.clicked_job(caller, task_id, "cancel", thread)
        if job is None:
            return
        job, changed = self.service.cancel(caller.tenant, task_id, by=caller.user)
        if changed:
            log.info("%s cancelled job %s", caller.user, task_id)
        elif job.status.is_terminal() and not (job.cancel and job.cancel.by == caller.user):
            self.ephemeral(caller, f"`{blocks.short_id(task_id)}` has already {job.status.value}; nothing to cancel.",
                           thread)
        # else: a double click while it is being cancelled; nothing to say

    def clicked_job(self, caller: Caller, task_id: str, verb: str, thread: str | None) -> Job | None:
        """The job a Cancel/Retry click is about, or None after telling the clicker why not."""
        if not self.access.allowed(caller.channel):
            self.ephemeral(caller, self.access.not_allowed_text(), thread)
            return None
        job = self.access.lookup(caller, task_id)
        if job is None:
            self.ephemeral(caller, GONE, thread)
            return None
        if not self.access.may_act(caller.user, job):
            log.info("%s may not %s job %s (submitted by %s)", caller.user, verb, task_id, job.origin.user)
            self.ephemeral(caller, self.access.refusal(job, verb), thread)
            return None
        return job

    def on_retry(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        caller = self._action_caller(body)
        task_id, seen = _retry_value(str(action.get("value") or ""))
        thread = self._thread_of(body)
        if self.clicked_job(caller, task_id, "retry", thread) is None:
            return
        message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        # The same card (ts) knowing the same number of retries (seen) is the same click.
        key = idempotency_key("retry", caller.tenant, task_id, message_ts, seen)
        # Where the clicked message lives: its thread, or its own ts when it is the top-level card.
        # The service prefers what the original job knows, but its card's ts may not be stored yet
        # (on gcp the notifier's record waits for the store's write gap).
        origin = Origin(source="slack", user=caller.user, team=caller.team, channel=caller.channel,
                        thread_ts=thread or message_ts or None, request_id=caller.request or None)
        try:
            new = self.service.retry(caller.tenant, task_id, origin=origin, idempotency_key=key)
        except NotFound:
            self.ephemeral(caller, GONE, thread)
            return
        except (Conflict, QueueFull) as exc:
            self.ephemeral(caller, f":hourglass: {blocks.escape(exc)}", thread)
            return
        except SpecError as exc:
            message = blocks.errors_message(spec_error_to_options(exc).errors, "No retry was submitted.")
            self.ephemeral(caller, message.blocks[0]["text"]["text"], thread)
            return
        log.info("%s retried job %s as %s", caller.user, task_id, new.task_id)

    def on_link(self, ack: Ack) -> None:
        ack()  # Slack sends link buttons' clicks too; they need only an ack

    # -- the form ----------------------------------------------------------------------

    def on_submit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body.get("user") or {}
        team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
        enterprise = (body.get("enterprise") or {}).get("id") if isinstance(body.get("enterprise"), dict) else None
        meta = modal.metadata(view)
        caller = Caller(tenant=enterprise or team, team=team, user=user.get("id") or "",
                        channel=str(meta.get("channel") or ""), request=str(view.get("id") or ""))
        if not caller.channel or not self.access.allowed(caller.channel):
            ack(**modal.errors_response([FieldError("", self.access.not_allowed_text() if caller.channel else
                                                    "this form lost its channel; close it and run /train again")]))
            return
        values = modal.values(view)
        try:
            spec = build_spec(caller.tenant, values)
        except OptionErrors as exc:
            ack(**modal.errors_response(exc))
            return
        origin = Origin(source="slack", user=caller.user, team=caller.team, channel=caller.channel,
                        thread_ts=meta.get("thread_ts") or None, request_id=caller.request or None)
        try:
            job, created = self.service.submit(spec, origin, idempotency_key=idempotency_key(
                "modal", caller.tenant, caller.channel, caller.user, caller.request))
        except SpecError as exc:
            ack(**modal.errors_response(spec_error_to_options(exc, typed_names(values))))
            return
        except QueueFull as exc:
            ack(**modal.errors_response([FieldError("", f"not submitted: {exc}")]))
            return
        except StoreError:
            log.exception("storing a job from the form failed")
            ack(**modal.errors_response([FieldError("", "the job store is unavailable; try again in a minute")]))
            return
        log.info("form by %s in %s: job %s (%s)", caller.user, caller.channel, job.task_id,
                 "created" if created else "repeat")
        ack()  # closes the form; the card appears in the channel

    def on_error(self, error: Exception) -> None:
        log.error("Slack request failed: %s: %s", type(error).__name__, error)


class _QuietTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment and then warns that our client
    (which deliberately has no token: authorize supplies it) wins. That is the intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def _retry_value(value: str) -> tuple[str, int]:
    """(task id, retries the card knew of) from a Retry button; plain ids are accepted too."""
    try:
        data = json.loads(value)
        return str(data["task"]), int(data.get("n", 0))
    except (ValueError, KeyError, TypeError):
        return value, 0
