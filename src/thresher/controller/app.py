"""The controller's ASGI app: `create_app(settings, store=..., clock=...)` wires everything."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
from collections.abc import AsyncIterator
from importlib.metadata import version

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from thresher.controller import collector, errors
from thresher.controller.audit import AuditTrail
from thresher.controller.body_limit import BodyLimit
from thresher.controller.confirm import ConfirmCaller
from thresher.controller.farm import Farm
from thresher.controller.hot_protocol import protocol_for
from thresher.controller.hot_routes import HotRoutes
from thresher.controller.notifier import Notifier
from thresher.controller.notify import Sender
from thresher.controller.observe import Observe
from thresher.controller.routes import (
    agent,
    deadline,
    engines,
    jobs,
    limits,
    monitor,
    nimby,
    ops,
    pools,
    renderacre,
    security,
    sites,
    submitters,
    subscriptions,
    tasks,
    templates,
    web,
    workers,
)
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import Clock, SystemClock
from thresher.store.store import Store

log = logging.getLogger("thresher.controller")
#: The installed distribution's version (read from its metadata, not the client's package).
VERSION = version("thresher")


class ThresherApp(FastAPI):
    """The FastAPI app, with the workers' polls and reports and people's submits served ahead
    of it by `hot` (`controller/hot_routes.py`) while `hot_routes` is on; every other request
    (and those with it off) goes through the app's middlewares and routes. While `hot_protocol`
    is on too, the server's connection protocol hands those straight to `hot` and writes their
    answers in one write (`controller/hot_protocol.py`); off, they come through `__call__`."""

    hot: HotRoutes | None = None
    hot_routes = True
    hot_protocol = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and self.hot_routes and hot.serves(scope):
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _sweep_forever(farm: Farm) -> None:
    """Expire silent workers, on the one controller holding the sweep lease (on PostgreSQL,
    where several may share the database); the others write the leases they heard."""
    while True:
        await asyncio.sleep(farm.settings.sweep_every_s)
        try:
            if not await asyncio.to_thread(farm.sweep_lease.held):
                await farm.call(farm.agents.flush_heartbeats)
                continue
            expired = await farm.call(farm.agents.sweep)
        except Exception:  # the sweeper must outlive a failed round (database restarting...)
            log.exception("sweep failed")
            continue
        for worker_id in expired:
            log.warning("worker %s went silent: its attempts are lost and requeued", worker_id)


async def _refresh_index_forever(farm: Farm) -> None:
    """Keep the dispatch index fresh while polls are held (`Farm.refresh_index`)."""
    while True:
        try:
            wait = await farm.thread.run(farm.refresh_index)
        except Exception:  # the loop outlives a failed read (database restarting...)
            log.exception("dispatch index refresh failed")
            wait = farm.settings.index_max_age_s
        await asyncio.sleep(wait)


#: The controller's background chores (with `create_app`'s `sweeper`).
_CHORES = (_sweep_forever, _refresh_index_forever)


def _warm_routes(app: FastAPI) -> None:
    """Build what FastAPI builds of every route at its first request (its dependencies and
    models, per included router: 1.5 s of CPU here, more on a busy machine), before
    the first request: else that request waits for it, on the event loop, with every other one.
    The API's routes are shared by the apps of a process (`_shared_routes`): the first app
    builds them. Versions of FastAPI without these lazy parts have nothing to build."""
    pending: list[object] = list(app.router.routes)
    while pending:
        route = pending.pop()
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):
            pending.extend(candidates())
        low = getattr(route, "effective_low_priority_routes", None)
        if callable(low):
            low()


@functools.cache
def _shared_routes() -> list[BaseRoute]:
    """The API's routes, built once per process and shared by every app built in it.

    FastAPI builds an included router's routes for each app that includes it (their
    parameters' and answers' models, 1,565 of them: 1.5 s of CPU, seconds on a busy machine),
    so a process starting many controllers (a test run: hundreds) spent most of its time
    there. The routers are included once, in a router of their own carrying the app's error
    answers, and its routes go into each app as they are; they hold nothing of an app (their
    endpoints find it in the request). `app.dependency_overrides` does not reach them."""
    api = APIRouter(responses=errors.ERROR_RESPONSES)
    # The workers' routes first: a request is matched against the routes in order, and a
    # farm's polls outnumber every other call (matching the jobs', tasks' and workers' routes
    # first cost a poll about 70 us, a tenth of its time).
    for module in (agent, jobs, tasks, workers):
        api.include_router(module.router)
    api.include_router(engines.router)
    api.include_router(engines.agent_router)
    api.include_router(templates.router)  # OpenJD templates
    api.include_router(renderacre.router)  # renderacre's submit_job
    api.include_router(deadline.router)  # Deadline Cloud's CreateJob & co
    api.include_router(deadline.admin_router)
    api.include_router(subscriptions.router)  # farm events, subscriptions (webhooks, e-mail)
    api.include_router(submitters.router)  # find, job updates, task-file jobs
    for scheduling in (limits, pools, nimby):
        api.include_router(scheduling.router)
    api.include_router(sites.router)  # sites, volumes, jobs' sync per site
    api.include_router(security.router)  # accounts, tokens, enrolment codes, audit
    api.include_router(security.enrol_router)
    api.include_router(monitor.router)  # the web monitor's reads, actions and events
    api.include_router(ops.router)  # /metrics
    return list(api.routes)


def create_app(
    settings: ControllerSettings,
    *,
    store: Store,
    clock: Clock | None = None,
    sweeper: bool = True,
) -> ThresherApp:
    """An app over `store`. With `sweeper`, background tasks expire silent workers and keep
    the dispatch index fresh while polls are held."""
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        farm = Farm(store, clock, settings, notifier)
        app.state.farm = farm
        await farm.call(farm.start, clock.now())
        await asyncio.to_thread(_warm_routes, app)
        chores = [asyncio.create_task(chore(farm)) for chore in _CHORES] if sweeper else []
        farm.events.start(asyncio.get_running_loop())
        deliveries = Sender(clock, smtp=settings.smtp)  # farm events to webhooks and e-mail
        notifier.listeners.append(deliveries.changed)
        sender = asyncio.create_task(deliveries.run(farm))
        try:
            yield
        finally:
            await farm.events.stop()
            for running in (*chores, sender):
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            farm.close()

    app = ThresherApp(
        title="Thresher",
        version=VERSION,
        description="Render farm controller. Every route but /healthz (and a worker's enrolment "
        "by one-time code) needs a bearer token; docs/security.md says which roles may call which.",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
        openapi_url=None,  # served by `_serve_openapi`, off the event loop
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_agent_bytes=settings.max_agent_request_bytes,
    )
    app.router.routes.extend(_shared_routes())
    deadline.install(app)  # its errors answered the AWS way
    app.add_middleware(ConfirmCaller)  # a known token not confirmed by a use case: here
    app.add_middleware(AuditTrail)  # every state-changing call, in the database
    web.install(app)  # the monitor's pages, under /
    _serve_openapi(app)
    app.add_middleware(Observe)  # request ids and request metrics (outermost)
    # ahead of them all
    app.hot = HotRoutes(app, settings.max_agent_request_bytes, settings.max_request_bytes)

    app.state.store = store
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    return app


# The routes `create_app` adds are functions of this module, never closures over the app:
# FastAPI keeps the endpoints it has looked at in caches of its own (up to 4,096 of them), and
# a closure there kept every app built in the process alive, with its farm, long after its
# server stopped (a test process grew by 40,000 objects per controller; its full garbage
# collections grew to seconds).
async def healthz(request: Request) -> dict[str, str]:
    return {"status": "ok", "version": VERSION, "database": request.app.state.store.dialect}


class Server(uvicorn.Server):
    """uvicorn's server, answering the held polls the moment it begins to shut down, so that
    the graceful shutdown need not cut them (their workers simply poll again). With
    `tunes_collector` (a controller process of its own, `thresher controller`), the garbage
    collector is tuned once the server has started (`collector.tune`): not for servers
    embedded in another program or a test run, whose collector is theirs."""

    tunes_collector = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.tunes_collector and self.started:
            collector.tune()

    async def on_tick(self, counter: int) -> bool:
        if not await super().on_tick(counter):
            return False
        farm = getattr(getattr(self.config.app, "state", None), "farm", None)
        if isinstance(farm, Farm) and not farm.notifier.closing:
            farm.notifier.close()
            farm.job_ends.close()
        return True


def server_config(app: FastAPI, settings: ControllerSettings | None = None) -> uvicorn.Config:
    """How every Thresher process serves the app. Held polls are cut after a second of graceful
    shutdown: workers simply poll again, and a stopping controller need not wait out the hold.
    No access log: a request line may carry a secret (renderacre's old token-in-path URL).
    With a certificate and key in `settings`, it serves https. A Thresher app is served by
    `hot_protocol.HotProtocol` (uvicorn's httptools protocol, the workers' polls and reports
    and people's submits answered more directly)."""
    tls = settings is not None and settings.tls_certfile is not None
    return uvicorn.Config(
        app,
        http=protocol_for(app),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(settings.tls_certfile) if tls and settings else None,
        ssl_keyfile=str(settings.tls_keyfile)
        if tls and settings and settings.tls_keyfile
        else None,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop a controller serves on: uvloop's where it is installed (not on Windows), whose
    wake-up from the farm thread and whose transports cost less per request than asyncio's;
    else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for the server; port 0 picks a free one.

    The protocol is named explicitly: asyncio turns on TCP_NODELAY only for sockets whose proto
    is IPPROTO_TCP, and without it every response waits ~40 ms for a delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _serve_openapi(app: FastAPI) -> None:
    """`/openapi.json` and `/docs`, open like FastAPI's own. Describing every route takes a
    second or more of CPU (several on a busy machine): the document is built, once, in a
    worker thread, so the event loop goes on serving polls and `/healthz` meanwhile."""
    app.add_api_route("/openapi.json", _openapi_document, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", _swagger_ui, methods=["GET"], include_in_schema=False)


def _document(app: FastAPI) -> bytes:
    return json.dumps(app.openapi(), separators=(",", ":")).encode()


async def _openapi_document(request: Request) -> Response:
    return Response(await asyncio.to_thread(_document, request.app), media_type="application/json")


async def _swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Thresher API")
