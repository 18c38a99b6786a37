"""What every listener works with: the job service, the access rules, the app's Web API client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient

from orchestrator.domain.job import Job
from orchestrator.service import JobService

from bot import blocks
from bot.access import Access, Caller
from bot.config import SlackSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontEndParts:
    """One Slack front end's shared parts, built once by ``bot.app.SlackFrontEnd``."""

    service: JobService
    access: Access
    settings: SlackSettings
    client: WebClient  # bot token; for views.open and ephemeral refusals
    default_gpu: str  # the deployment's GPU_TYPE: the form's preselected GPU
    gpu_types: tuple[str, ...]  # what this deployment can run: the form's choices and the help
    # The job with its Slack record overlaid (card ts, retries), for status replies; the notifier's ledger.
    view: Callable[[Job], Job] = lambda job: job

    def tell(self, caller: Caller, text: str, thread_ts: str | None = None) -> None:
        """A note only the clicking user sees; failures are logged (the click itself went fine)."""
        message = blocks.notice(text)
        try:
            self.client.chat_postEphemeral(channel=caller.channel, user=caller.user, text=message.text,
                                           blocks=message.blocks, thread_ts=thread_ts, **blocks.NO_PARSING)
        except Exception as exc:  # noqa: BLE001
            log.warning("chat.postEphemeral to %s in %s failed: %s", caller.user, caller.channel, exc)
