"""The budget store contract: budgets set at run time (Slack ``/train budget set``, REST ``PUT /budgets``).

``BUDGETS`` in the settings is the base; a stored entry overrides it per (scope, key)
(``orchestrator.domain.budget.merged``). Every change is audited: who, when, the old and the new value.

Semantics every ``BudgetStore`` keeps (tests/contract/test_budget_store_contract.py):

- ``set(budget, by, now)``: store it (replacing the stored one of its scope and key) and audit the
  change; returns the change. Setting an equal budget again stores and audits nothing (returns None).
- ``remove(scope, key, by, now)``: drop the stored entry (the settings' base, if any, applies again);
  returns the change, or None when nothing was stored.
- ``list()``: the stored budgets, by scope then key. ``audit(limit)``: changes, newest first.
- Storage failures raise ``StoreError``. ``close()`` releases connections.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.domain.budget import SCOPES, Budget
from orchestrator.domain.job import utcnow

if TYPE_CHECKING:
    from orchestrator.backends import Backend


@dataclass(frozen=True)
class BudgetChange:
    """One audited change: ``old`` None for a new budget, ``new`` None for a removal."""

    scope: str
    key: str
    by: str
    at: datetime
    old: Budget | None
    new: Budget | None

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "by": self.by, "at": self.at.isoformat(),
                "old": self.old.model_dump() if self.old else None,
                "new": self.new.model_dump() if self.new else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetChange:
        at = data["at"]
        return cls(scope=data["scope"], key=data["key"], by=data["by"],
                   at=at if isinstance(at, datetime) else datetime.fromisoformat(at),
                   old=Budget.model_validate(data["old"]) if data.get("old") else None,
                   new=Budget.model_validate(data["new"]) if data.get("new") else None)


def ordered(budgets: list[Budget]) -> list[Budget]:
    return sorted(budgets, key=lambda b: (SCOPES.index(b.scope), b.key))


class BudgetStore(abc.ABC):
    """The deployment's stored budgets and their audit trail (semantics in the module docstring)."""

    def set(self, budget: Budget, by: str, now: datetime | None = None) -> BudgetChange | None:
        return self._change(budget.scope, budget.key, budget, by, now)

    def remove(self, scope: str, key: str, by: str, now: datetime | None = None) -> BudgetChange | None:
        return self._change(scope, key, None, by, now)

    @abc.abstractmethod
    def _change(self, scope: str, key: str, new: Budget | None, by: str,
                now: datetime | None) -> BudgetChange | None:
        """Store ``new`` (None: remove) for (scope, key) and its audit row in one step; None when nothing changed."""

    @abc.abstractmethod
    def list(self) -> list[Budget]: ...

    @abc.abstractmethod
    def audit(self, limit: int = 50) -> list[BudgetChange]: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


def change_for(old: Budget | None, new: Budget | None, scope: str, key: str, by: str,
               now: datetime | None) -> BudgetChange | None:
    """The change to store and audit, or None when ``new`` is what is stored already."""
    if old == new:
        return None
    return BudgetChange(scope=scope, key=key, by=by, at=now or utcnow(), old=old, new=new)


def open_budgets(backend: Backend) -> BudgetStore:
    """The budget store beside the backend's job store: the SQLite file, or Firestore's client."""
    client = getattr(backend.store, "client", None)
    if client is not None and backend.settings.LAXAI_BACKEND == "gcp":
        from orchestrator.budgets.firestore import FirestoreBudgets

        return FirestoreBudgets(client)
    from orchestrator.budgets.sqlite import SqliteBudgets

    return SqliteBudgets(backend.settings.db_path, timeout=backend.settings.STORE_TIMEOUT)
