"""Python client for the REST API (used by the `laxai` CLI; importable on its own)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class ClientError(RuntimeError):
    """The service refused or failed a request; ``message`` is the service's words."""

    def __init__(self, status: int, message: str, detail: Any = None):
        self.status = status
        self.message = message
        self.detail = detail
        super().__init__(f"{status}: {message}")


class LaxaiClient:
    """Thin wrapper over the REST API with bearer-token auth."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        headers = {"X-Laxai-Client": "cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to one request; ClientError for a refusal (its words) or no answer."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(0, f"cannot reach {self.url} ({exc.__class__.__name__}); is `laxai serve` running?") \
                from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message, detail = body.get("error", response.text), body.get("detail")
            except ValueError:
                message, detail = response.text[:500], None
            raise ClientError(response.status_code, str(message), detail)
        return response

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/orchestrate", json=body, headers=headers)

    def status(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", "/status", params={"task_id": task_id})

    def jobs(self, statuses: list[str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [("limit", limit)] + [("status", s) for s in statuses or []]
        return self._call("GET", "/jobs", params=params)["jobs"]

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{task_id}/cancel")

    def retry(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{task_id}/retry")

    def approve(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{task_id}/approve")

    def reject(self, task_id: str, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{task_id}/reject", json={"reason": reason} if reason else None)

    def plot(self, task_id: str) -> bytes:
        """The job's training curves, PNG bytes (409 while no epoch has finished)."""
        return self._send("GET", f"/jobs/{task_id}/plot.png").content

    def logs(self, task_id: str, tail: int = 200) -> list[str]:
        return self._call("GET", f"/jobs/{task_id}/logs", params={"tail": tail})["lines"]

    def costs(self, period: str = "month") -> dict[str, Any]:
        return self._call("GET", "/costs", params={"period": period})

    def models(self, name: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/models", params={"name": name} if name else {})["models"]

    def model_listing(self, name: str | None = None) -> dict[str, Any]:
        """``GET /models``: ``models`` (each with its ``aliases``) and ``aliases``."""
        return self._call("GET", "/models", params={"name": name} if name else {})

    def promote(self, name: str, version: str, alias: str = "production") -> dict[str, Any]:
        path = f"/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}/promote"
        return self._call("POST", path, params={"alias": alias})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def close(self) -> None:
        self.http.close()
