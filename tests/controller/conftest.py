"""A real controller served by uvicorn on 127.0.0.1 over the test's database (SQLite or PG)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import Clock
from thresher.testing import ServedController, serve_in_thread

Serve = Callable[..., ServedController]


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Serve]:
    """Start a controller: `serve(clock=..., lease_s=...)`; settings fields as keywords."""
    with contextlib.ExitStack() as stack:

        def start(*, clock: Clock | None = None, **overrides: Any) -> ServedController:
            settings = replace(ControllerSettings(data_dir=tmp_path / "data"), **overrides)
            return stack.enter_context(serve_in_thread(settings, database_url=db_url, clock=clock))

        yield start


@pytest.fixture
def served(serve: Serve) -> ServedController:
    return serve()


@pytest.fixture
def admin(served: ServedController) -> Iterator[Client]:
    with Client(served.url, served.admin_token) as client:
        yield client
