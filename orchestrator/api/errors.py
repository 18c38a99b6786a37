"""Error responses: every failure is JSON that names what is wrong; never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.domain.errors import SpecError, errors_from_list
from orchestrator.domain.job import IdempotencyKeyReused
from orchestrator.service import Conflict, NotAllowed, NotFound, QueueFull
from orchestrator.stores.base import StoreError

log = logging.getLogger(__name__)


def _fields(errors) -> list[dict[str, str]]:
    return [e.as_dict() for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = errors_from_list(list(exc.errors()), drop=("body", "query", "path", "header"))
        return JSONResponse({"error": "invalid request: " + "; ".join(map(str, errors)), "detail": _fields(errors)},
                            422)

    @app.exception_handler(SpecError)
    async def _spec(_: Request, exc: SpecError) -> JSONResponse:
        return JSONResponse({"error": f"invalid request: {exc}", "detail": _fields(exc.errors)}, 422)

    @app.exception_handler(IdempotencyKeyReused)
    async def _key_reused(_: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        # The first request stays as it was; nothing of this one is stored.
        return JSONResponse({"error": f"{exc.code}: {exc}", "code": exc.code, "detail": _fields(exc.errors)}, 422)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": f"no job {str(exc)[:64]!r}"}, 404)

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"error": str(exc), "code": "too_many_queued", "limit": exc.limit}, 429,
                            headers={"Retry-After": "30"})

    @app.exception_handler(NotAllowed)
    async def _not_allowed(_: Request, exc: NotAllowed) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 403)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 409)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        return JSONResponse({"error": "job storage is unavailable; nothing was changed, please retry"}, 503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error; it has been logged"}, 500)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        received = 0
        refused = False

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            if refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"error": "request body too large: at most {self.limit} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
