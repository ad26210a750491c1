"""The FastAPI app: REST routes under /api/v1, /health, /metrics, and the dashboard."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match

from api.autolaunch import launch_on_start
from api.routes import campaigns, events, judging, ops, rounds
from api.state import ApiSettings, ApiState
from store.engine import make_engine, session_factory
from store.schema import upgrade

DASHBOARD = Path(__file__).parent / "dashboard"


def create_app(settings: ApiSettings) -> FastAPI:
    """The app over the store of `settings`, launching on the Ray cluster this process
    joined (`cutloop serve` joins it before serving, so a failure is one line)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        state = ApiState(settings, engine, session_factory(engine))
        app.state.api = state
        # start-up's objects (imports, the app, the engine) out of every collection while
        # the app serves, its garbage collected first: the collector then walks only what
        # requests make (p99 under load); given back to the collector when the app stops
        gc.collect()
        gc.freeze()
        queue = threading.Thread(target=state.run_queue, name="launch-queue", daemon=True)
        queue.start()
        if settings.launch is not None:
            threading.Thread(
                target=launch_on_start, args=(state, settings.launch), name="launch-on-start",
                daemon=True,
            ).start()  # fmt: skip
        try:
            yield
        finally:
            state.stop.set()
            state.wake.set()
            queue.join(timeout=30)
            engine.dispose()
            gc.unfreeze()

    app = FastAPI(
        title="cutloop",
        version=version("cutloop"),
        summary="Align language models with judgments: campaigns, rounds, judgments, scores.",
        lifespan=lifespan,
    )
    for module in (campaigns, rounds, judging, events, ops):
        app.include_router(module.router)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
        """Allow: every method the path has (Starlette names only its first route's)."""
        allowed = sorted(
            method
            for route in app.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods
        )
        return JSONResponse({"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(allowed)})

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return app
