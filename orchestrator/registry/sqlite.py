"""SQLite ModelRegistry, in the local database file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.registry.base import ModelEntry, ModelRegistry
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

    def close(self) -> None:
        self.db.close()
