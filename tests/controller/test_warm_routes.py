"""Routes are built before the first request, not on the event loop while it waits.

FastAPI builds each route's dependencies and models at the first request that is matched
through its router; on a busy machine that took the first request past its client's timeout
while every other request waited behind it. The controller builds them while it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import routing

from thresher.controller.app import _shared_routes, _warm_routes, create_app
from thresher.controller.settings import ControllerSettings
from thresher.store.db import sqlite_url
from thresher.store.store import Store
from thresher.testing import ServedController

from .conftest import Serve


def test_a_first_request_builds_no_route(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    context = getattr(routing, "_EffectiveRouteContext", None)
    if context is None or not hasattr(context, "from_api_route"):
        pytest.skip("this FastAPI builds its routes when they are declared")
    built: list[str] = []
    original = context.from_api_route

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(str(kwargs.get("original_route", args[0] if args else "")))
        return original(*args, **kwargs)

    monkeypatch.setattr(context, "from_api_route", spy)
    _shared_routes.cache_clear()  # built afresh by this test's controller, whatever ran before
    served: ServedController = serve()
    assert built, "nothing was built at start"
    built.clear()
    for path in ("/api/v1/jobs/1/blocks/0/tasks/7", "/api/v1/sites", "/healthz", "/metrics"):
        httpx.get(f"{served.url}{path}", timeout=30)
    assert built == []


def test_the_routes_are_built_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process starting many controllers (a test run) built every route again for each."""
    context = getattr(routing, "_EffectiveRouteContext", None)
    if context is None or not hasattr(context, "from_api_route"):
        pytest.skip("this FastAPI builds its routes when they are declared")
    store = Store.open(sqlite_url(tmp_path))
    try:
        settings = ControllerSettings(data_dir=tmp_path)
        _warm_routes(create_app(settings, store=store))  # the process's first, if not built yet
        built: list[object] = []
        original = context.from_api_route

        def spy(*args: Any, **kwargs: Any) -> Any:
            built.append(kwargs.get("original_route"))
            return original(*args, **kwargs)

        monkeypatch.setattr(context, "from_api_route", spy)
        second = create_app(settings, store=store)
        _warm_routes(second)
        assert built == []
        assert any(getattr(r, "path", "") == "/healthz" for r in second.routes)
    finally:
        store.close()
