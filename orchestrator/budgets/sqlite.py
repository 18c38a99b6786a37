"""SQLite budgets: the ``budgets`` and ``budget_audit`` tables in the local database file."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from orchestrator.backends.sqlite_db import SqliteDatabase
from orchestrator.budgets.base import BudgetChange, BudgetStore, change_for, ordered
from orchestrator.domain.budget import Budget
from orchestrator.stores.base import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS budget_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
)
"""


class SqliteBudgets(BudgetStore):
    """Each change and its audit row are written in one transaction under the file's write lock."""

    def __init__(self, path: Path | str, timeout: float | None = None):
        try:  # its schema is written when first used, maybe inside a request: a locked file is a StoreError (503)
            self.db = SqliteDatabase(path, SCHEMA, timeout=timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"opening the budgets failed: {exc}") from exc

    def _change(self, scope: str, key: str, new: Budget | None, by: str,
                now: datetime | None) -> BudgetChange | None:
        try:
            with self.db.write() as conn:
                row = conn.execute("SELECT data FROM budgets WHERE scope = ? AND key = ?", (scope, key)).fetchone()
                old = Budget.model_validate_json(row["data"]) if row else None
                change = change_for(old, new, scope, key, by, now)
                if change is None:
                    return None
                if new is None:
                    conn.execute("DELETE FROM budgets WHERE scope = ? AND key = ?", (scope, key))
                else:
                    conn.execute("INSERT OR REPLACE INTO budgets (scope, key, data) VALUES (?, ?, ?)",
                                 (scope, key, new.model_dump_json()))
                conn.execute("INSERT INTO budget_audit (data) VALUES (?)", (json.dumps(change.to_dict()),))
                return change
        except sqlite3.Error as exc:
            raise StoreError(f"storing the budget {scope}:{key} failed: {exc}") from exc

    def list(self) -> list[Budget]:
        try:
            rows = self.db.read().execute("SELECT data FROM budgets").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the budgets failed: {exc}") from exc
        return ordered([Budget.model_validate_json(row["data"]) for row in rows])

    def audit(self, limit: int = 50) -> list[BudgetChange]:
        try:
            rows = self.db.read().execute("SELECT data FROM budget_audit ORDER BY id DESC LIMIT ?",
                                          (int(limit),)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the budget audit failed: {exc}") from exc
        return [BudgetChange.from_dict(json.loads(row["data"])) for row in rows]

    def close(self) -> None:
        self.db.close()
