"""`thresher files`: run a site's file service next to its storage."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import asyncio
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from thresher.files.server import keep_heap_small, listen, server
from thresher.files.service import FileService
from thresher.files.store import ChunkStore


def parse_volumes(given: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` pairs: the root of each volume at this site."""
    roots: dict[str, Path] = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"{item!r}: give NAME=PATH", param_hint="--volume")
        roots[name] = Path(path).resolve()
    return roots


def files_token(root: Path, given: str | None) -> str:
    """The service's token: given, else THRESHER_FILES_TOKEN, else kept in ROOT/files-token
    (made on first start, readable by its owner only)."""
    token = given or os.environ.get("THRESHER_FILES_TOKEN")
    if token:
        return token
    path = root / "files-token"
    if path.is_file():
        return path.read_text().strip()
    token = "files_" + secrets.token_urlsafe(32)
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def files(
    site: Annotated[str, typer.Option(help="The site this service is at.")] = "hq",
    root: Annotated[Path, typer.Option(help="Where it keeps its chunk store.")] = Path("files"),
    volume: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH: a volume's root at this site (repeat)."),
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8421,
    token: Annotated[
        str | None,
        typer.Option(help="Its token (else THRESHER_FILES_TOKEN, else ROOT/files-token)."),
    ] = None,
    bandwidth: Annotated[
        int | None, typer.Option(min=1, help="Cap on the pulls it runs, bytes/s.")
    ] = None,
) -> None:
    """Run a site's file service: its chunk store, and transfers with other sites'."""
    root = root.resolve()
    service = FileService(
        ChunkStore(root / "store"),
        token=files_token(root, token),
        site=site,
        roots=parse_volumes(volume or []),
    )
    service.bps = bandwidth
    keep_heap_small()
    sock = listen(host, port)
    typer.echo(f"thresher files for site {site} on http://{host}:{sock.getsockname()[1]}")
    asyncio.run(server(service).serve(sockets=[sock]))


def register(app: typer.Typer) -> None:
    app.command("files")(files)
