"""The controller's ASGI app: `create_app(settings, store=..., clock=...)` wires everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from thresher import __version__
from thresher.controller import errors
from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.routes import agent, jobs, tasks, workers
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import Clock, SystemClock
from thresher.store.store import Store

log = logging.getLogger("thresher.controller")


async def _sweep_forever(farm: Farm) -> None:
    while True:
        await asyncio.sleep(farm.settings.sweep_every_s)
        try:
            expired = farm.sweep()
        except Exception:  # the sweeper must outlive a failed round (database restarting...)
            log.exception("sweep failed")
            continue
        for worker_id in expired:
            log.warning("worker %s went silent: its attempts are lost and requeued", worker_id)


def create_app(
    settings: ControllerSettings,
    *,
    store: Store,
    clock: Clock | None = None,
    sweeper: bool = True,
) -> FastAPI:
    """An app over `store`. With `sweeper`, a background task expires silent workers."""
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        farm = Farm(store, clock, settings, Notifier())
        app.state.farm = farm
        # Workers that were attached before a restart get one lease to come back.
        store.refresh_all_workers(clock.now())
        task = asyncio.create_task(_sweep_forever(farm)) if sweeper else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Thresher",
        version=__version__,
        description="Render farm controller. Every route but /healthz needs a bearer token.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (jobs, tasks, workers, agent):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__, "database": store.dialect}

    return app


def server_config(app: FastAPI) -> uvicorn.Config:
    """How every Thresher process serves the app. Held polls are cut after a second of graceful
    shutdown: workers simply poll again, and a stopping controller need not wait out the hold."""
    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
