"""`thresher download JOB`: fetch a job's outputs from the main site's file service into a
folder here, as tasks finish (`--follow`), resuming an interrupted file, never overwriting a
different file unless told (`--existing skip|overwrite|copy`)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import asyncio
import time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import httpx
import typer

from thresher.cli.common import DEFAULT_URL, TokenOption, UrlOption, connect, fail
from thresher.core.volumes import find_refs
from thresher.files.download import Existing, TransferError, download
from thresher.files.peer import Peer
from thresher.files.stats import TransferStats
from thresher.files.upload import DigestCache

FINAL = ("succeeded", "failed", "canceled")
FOLLOW_EVERY_S = 2.0


def output_folder(output: object) -> tuple[str, str]:
    """(volume, folder in it) of a job's share-path output (a file pattern: its folder)."""
    refs = find_refs(output) if isinstance(output, str) else []
    if not refs:
        raise ValueError(f"the job's output {output!r} is not a share path (share=VOLUME/...)")
    rel = PurePosixPath(refs[0].rel)
    return refs[0].volume, str(rel.parent if rel.suffix else rel).removeprefix(".")


def fetch_once(
    access: Any, volume: str, folder: str, dest: Path, *, existing: Existing, name: str
) -> TransferStats:
    """One pass: the main site checks the output folder in, this machine brings it over."""
    headers = {"Authorization": f"Bearer {access.token}"}
    body = {"volume": volume, "path": folder, "name": name}
    answer = httpx.post(f"{access.url}/files/v1/checkin", json=body, headers=headers, timeout=3600)
    if answer.status_code == 404:
        return TransferStats()  # nothing written yet
    answer.raise_for_status()

    async def run() -> TransferStats:
        async with Peer(access.url, access.token) as peer:
            manifest = await peer.manifest(name)
            if manifest is None:
                return TransferStats()
            cache = DigestCache(dest / ".thresher-download.json")
            return await download(manifest, dest, peer, existing=existing, cache=cache)

    return asyncio.run(run())


def download_command(
    job_id: Annotated[int, typer.Argument(metavar="JOB", help="Job id.")],
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Folder to fetch into.")] = Path("."),
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep fetching as tasks finish, until the job ends."),
    ] = False,
    existing: Annotated[
        str,
        typer.Option(help="A different file already there: skip (keep it), overwrite, or copy."),
    ] = "skip",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Fetch a job's outputs here; --follow fetches them as tasks finish."""
    if existing not in ("skip", "overwrite", "copy"):
        fail("--existing is skip, overwrite or copy")
    mode: Existing = existing  # type: ignore[assignment]
    with connect(url, token) as client:
        job = client.job(job_id)
        try:
            volume, folder = output_folder(job.payload.get("output"))
        except ValueError as exc:
            fail(str(exc))
        access = client.file_access(job_id)
        total = TransferStats()
        while True:
            status = client.job(job_id).status
            try:
                stats = fetch_once(
                    access, volume, folder, dest, existing=mode, name=f"job-{job_id}-outputs"
                )
            except TransferError as exc:
                if status in FINAL:
                    raise
                # A task was still writing a file when the pass checked the folder in: the
                # file changed under it. The next pass (the file whole by then) fetches it.
                typer.echo(f"will try again: {exc}", err=True)
                time.sleep(FOLLOW_EVERY_S)
                continue
            total.bytes_moved += stats.bytes_moved
            total.files_kept = stats.files_kept
            written = stats.files - stats.files_skipped - stats.files_kept
            if written:
                typer.echo(f"{written} files fetched ({stats.bytes_moved} bytes)")
            if not follow or status in FINAL:
                break
            time.sleep(FOLLOW_EVERY_S)
    if total.files_kept:
        typer.echo(f"{total.files_kept} different files already there were kept (--existing)")
    typer.echo(f"job {job_id}: outputs in {dest} ({total.bytes_moved} bytes moved)")


def register(app: typer.Typer) -> None:
    app.command("download")(download_command)
