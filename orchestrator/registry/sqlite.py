"""SQLite ModelRegistry, in the local database file: ``models`` (one row per version) and
``model_aliases`` (one row per tenant, name and alias; moved inside one write transaction)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from orchestrator.registry.base import ModelAlias, ModelEntry, ModelRegistry, UnknownVersion, moved, ordered
from orchestrator.backends.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    task_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, alias)
)
"""


class SqliteModelRegistry(ModelRegistry):
    def __init__(self, path: Path | str):
        self.db = SqliteDatabase(path, SCHEMA)

    def register(self, entry: ModelEntry) -> ModelEntry:
        with self.db.write() as conn:
            row = conn.execute("SELECT data FROM models WHERE task_id = ?", (entry.task_id,)).fetchone()
            if row:
                return ModelEntry.model_validate_json(row["data"])
            latest = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM models WHERE tenant_id = ? AND name = ?",
                (entry.tenant_id, entry.name),
            ).fetchone()[0]
            stored = entry.model_copy(update={"version": int(latest) + 1})
            conn.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)",
                (stored.tenant_id, stored.name, stored.version, stored.task_id, stored.created_at.timestamp(),
                 stored.model_dump_json()),
            )
            return stored

    def list(self, tenant_id: str, name: str | None = None, limit: int = 100) -> list[ModelEntry]:
        sql = "SELECT data FROM models WHERE tenant_id = ?"
        params: list[object] = [tenant_id]
        if name:
            sql += " AND name = ?"
            params.append(name)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(int(limit))
        rows = self.db.read().execute(sql, params).fetchall()
        return [ModelEntry.model_validate_json(r["data"]) for r in rows]

    def get(self, tenant_id: str, name: str, version: int) -> ModelEntry | None:
        row = self.db.read().execute("SELECT data FROM models WHERE tenant_id = ? AND name = ? AND version = ?",
                                     (tenant_id, name, int(version))).fetchone()
        return ModelEntry.model_validate_json(row["data"]) if row else None

    def set_alias(self, tenant_id: str, name: str, alias: str, version: int, by: str,
                  now: datetime | None = None) -> tuple[ModelAlias, bool]:
        key = (tenant_id, name, alias)
        with self.db.write() as conn:  # BEGIN IMMEDIATE: the read and the move are one step
            exists = conn.execute("SELECT 1 FROM models WHERE tenant_id = ? AND name = ? AND version = ?",
                                  (tenant_id, name, int(version))).fetchone()
            if not exists:
                raise UnknownVersion(f"no version {version} of model {name!r}")
            row = conn.execute("SELECT data FROM model_aliases WHERE tenant_id = ? AND name = ? AND alias = ?",
                               key).fetchone()
            old = ModelAlias.model_validate_json(row["data"]) if row else None
            new = moved(old, tenant_id, name, alias, int(version), by, now)
            if new is None:
                return old, False  # type: ignore[return-value] - moved() is None only when old is set
            conn.execute("INSERT OR REPLACE INTO model_aliases VALUES (?, ?, ?, ?)", (*key, new.model_dump_json()))
            return new, True

    def aliases(self, tenant_id: str, name: str | None = None) -> list[ModelAlias]:
        sql, params = "SELECT data FROM model_aliases WHERE tenant_id = ?", [tenant_id]
        if name:
            sql += " AND name = ?"
            params.append(name)
        rows = self.db.read().execute(sql, params).fetchall()
        return ordered([ModelAlias.model_validate_json(r["data"]) for r in rows])

    def close(self) -> None:
        self.db.close()
