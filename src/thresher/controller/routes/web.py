"""The web monitor's pages: static files shipped inside the package (HTML, JavaScript modules,
CSS; no build step), served under `/` and `/ui/`. They hold no farm data: the page signs in
with a token and reads everything through the authorised API, like the CLI."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

#: Where the assets are: `thresher/controller/web/` (package data).
ASSETS = Path(__file__).resolve().parent.parent / "web"


def install(app: FastAPI) -> None:
    """`/` answers the monitor's page; `/ui/...` its scripts, styles and icons."""
    app.add_api_route("/", _index, methods=["GET"], include_in_schema=False)
    app.mount("/ui", StaticFiles(directory=ASSETS), name="ui")


async def _index() -> FileResponse:
    # Not a closure over `app`: FastAPI's caches of endpoints would keep the app alive.
    return FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})
