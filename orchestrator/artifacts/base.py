"""The ArtifactStore contract: checkpoints by (task, name), uploaded and fetched as files.

Implementations: ``artifacts.local`` (a directory under LAXAI_HOME) and
``artifacts.gcs`` (a bucket, ``ARTIFACT_BUCKET``). Workers upload ``last.pt``
after every epoch so a later execution, possibly on another machine, resumes
from it.

Fencing (zombie executions): each stored file remembers the attempt that wrote or claimed it,
and a worker's upload names its attempt. An upload is refused (``Superseded``) when the file
already belongs to a later attempt, and the check and the replacement are one atomic step on
the file itself (a lock locally, generation preconditions on GCS), so no take-over can slip
between them. A new attempt ``claim``s its files as it starts, so from then on an execution
whose lease was taken cannot overwrite them, even before the new one has uploaded anything.
Before that claim (between the take-over in the store and the new execution's start) a zombie's
upload can still land: it is a checkpoint of the same job, no newer attempt's file is replaced,
and the new attempt's first upload replaces it. The worker also stops uploading as soon as it
learns the attempt is lost (``flags.lost``), which usually comes first.
"""

from __future__ import annotations

import abc
from pathlib import Path


class Superseded(Exception):
    """The file belongs to a later attempt of the job: this execution may no longer write it."""

    def __init__(self, task_id: str, name: str, attempt: int, owner: int):
        super().__init__(f"{task_id}/{name} belongs to attempt {owner}; attempt {attempt} may not write it")
        self.owner = owner


def check_owner(task_id: str, name: str, attempt: int, owner: int | None) -> None:
    """Raise Superseded when ``owner`` (the attempt that holds the file) is later than ``attempt``."""
    if owner is not None and owner > attempt:
        raise Superseded(task_id, name, attempt, owner)


class ArtifactStore(abc.ABC):
    """Files belonging to a job, addressed by task id and file name."""

    @abc.abstractmethod
    def uri(self, task_id: str, name: str) -> str:
        """Where the file lives (a path or a gs:// URI)."""

    @abc.abstractmethod
    def upload(self, task_id: str, name: str, source: Path, attempt: int | None = None) -> str:
        """Copy a local file in (replacing an older one atomically); return its uri.

        With ``attempt`` (workers always pass theirs) the replacement is fenced: Superseded when a
        later attempt wrote or claimed the file. Without it (tools, tests) the write is unfenced."""

    @abc.abstractmethod
    def claim(self, task_id: str, name: str, attempt: int) -> None:
        """Make ``attempt`` the file's owner so no earlier attempt can replace it (its content is
        unchanged); Superseded when a later attempt owns it already."""

    @abc.abstractmethod
    def download(self, task_id: str, name: str, dest: Path) -> bool:
        """Copy the file to ``dest``; False when there is none."""

    @abc.abstractmethod
    def exists(self, task_id: str, name: str) -> bool: ...
