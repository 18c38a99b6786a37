"""The ArtifactStore contract: checkpoints by (task, name), uploaded and fetched as files.

Implementations: ``artifacts.local`` (a directory under LAXAI_HOME) and
``artifacts.gcs`` (a bucket, ``ARTIFACT_BUCKET``). Workers upload ``last.pt``
after every epoch so a later execution, possibly on another machine, resumes
from it.
"""

from __future__ import annotations

import abc
from pathlib import Path


class ArtifactStore(abc.ABC):
    """Files belonging to a job, addressed by task id and file name."""

    @abc.abstractmethod
    def uri(self, task_id: str, name: str) -> str:
        """Where the file lives (a path or a gs:// URI)."""

    @abc.abstractmethod
    def upload(self, task_id: str, name: str, source: Path) -> str:
        """Copy a local file in (replacing an older one atomically); return its uri."""

    @abc.abstractmethod
    def download(self, task_id: str, name: str, dest: Path) -> bool:
        """Copy the file to ``dest``; False when there is none."""

    @abc.abstractmethod
    def exists(self, task_id: str, name: str) -> bool: ...
