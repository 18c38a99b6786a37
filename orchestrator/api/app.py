"""The FastAPI application: REST routes, push endpoints, error handling, extensions and background services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from orchestrator.api import budget_routes, cost_routes, eventarc, model_routes, plot_routes, push
from orchestrator.api.errors import BodyLimit, install_error_handlers
from orchestrator.api.oidc import OidcGate
from orchestrator.api.routes import router
from orchestrator.runtime import Runtime, install_extensions

DESCRIPTION = """Submit and follow YOLO training jobs. Authenticate with `Authorization: Bearer <token>`;
each token belongs to one tenant, and a tenant sees only its own jobs."""


def create_app(runtime: Runtime, extensions: set[str] | None = None, with_extensions: bool = True) -> FastAPI:
    """The service's ASGI app. Background services start and stop with it."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="LaxAI Train", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(budget_routes.router)  # approve / reject held jobs, budgets (issue 15)
    app.include_router(cost_routes.router)  # GET /costs: spend reports (issue 15)
    app.include_router(model_routes.router)  # GET /models, promote a version (issue 12)
    app.include_router(plot_routes.router)  # GET /jobs/{id}/plot.png: training curves (issue 12)
    # Machine callers (Pub/Sub push, Cloud Scheduler, Eventarc), OIDC-checked; not in the OpenAPI spec.
    app.state.oidc = OidcGate(runtime.settings, runtime.oidc_certs)
    app.include_router(push.router)
    app.include_router(eventarc.router)
    if with_extensions:
        runtime.extensions = install_extensions(app, runtime, extensions)
    app.add_middleware(BodyLimit, limit=runtime.settings.MAX_BODY_BYTES)
    return app
