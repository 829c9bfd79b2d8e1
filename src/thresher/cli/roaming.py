"""The roaming submitter: a machine with no shared storage (its own `local` site) sends a job's
input and dependencies to the main site's file service before it submits (`thresher submit
--upload-deps`), and fetches the outputs back (`thresher download`).

The files go straight to the main site's file service (`GET /api/v1/files/access` says where),
keeping their layout under the folder they share, and are written under
``uploads/<owner>-<id>/`` of a volume there; the job is submitted with those share paths. An
output given as a local path renders to ``uploads/<owner>-<id>/out/`` and is fetched back.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from thresher.client import Client
from thresher.files.peer import Peer
from thresher.files.upload import upload
from thresher.schemas import api


class RoamingError(Exception):
    """What stops an upload of a job's files."""


def pick_volume(access: api.FileAccessOut, volume: str | None) -> str:
    if volume is not None:
        if volume not in access.volumes:
            raise RoamingError(f"volume {volume!r} has no root at {access.site}")
        return volume
    if not access.volumes:
        raise RoamingError(f"no volume has a root at the main site {access.site}")
    return sorted(access.volumes)[0]


def local_files(payload: dict[str, Any]) -> list[Path]:
    """The job's input(s) and dependencies that are paths of this machine."""
    texts = [
        payload.get("input"),
        *(payload.get("inputs") or ()),
        *(payload.get("dependencies") or ()),
    ]
    found = []
    for text in texts:
        if isinstance(text, str) and not text.startswith("share="):
            path = Path(text)
            if not path.is_file():
                raise RoamingError(f"{text} is not a file on this machine")
            found.append(path.resolve())
    return list(dict.fromkeys(found))


def upload_deps(
    client: Client, payload: dict[str, Any], *, owner: str, volume: str | None
) -> tuple[dict[str, Any], str | None]:
    """Send the job's local files to the main site; the payload with share paths in their
    place, and the local folder its output stood for (to fetch the outputs into)."""
    access = client.file_access()
    vol = pick_volume(access, volume)
    files = local_files(payload)
    if not files:
        return payload, None
    base = Path(os.path.commonpath([str(f.parent) for f in files]))
    rels = {f: f.relative_to(base).as_posix() for f in files}
    # the folder the farm lets this caller upload to (its token opens that only)
    folder = f"{access.upload_folder}{int(time.time())}-{secrets.token_hex(3)}"
    name = folder.replace("/", "-")

    async def send() -> None:
        async with Peer(access.url, access.token) as peer:
            await upload(base, list(rels.values()), peer, name=name)

    asyncio.run(send())
    headers = {"Authorization": f"Bearer {access.token}"}
    body = {"manifest": name, "volume": vol, "path": folder}
    answer = httpx.post(f"{access.url}/files/v1/checkout", json=body, headers=headers, timeout=3600)
    if not answer.is_success:
        raise RoamingError(
            f"the main site's file service: {answer.status_code} {answer.text[:300]}"
        )
    share = {str(f): f"share={vol}/{folder}/{rel}" for f, rel in rels.items()}

    def swap(text: object) -> object:
        return share.get(str(Path(text).resolve()), text) if isinstance(text, str) else text

    changed = dict(payload)
    for key in ("input",):
        changed[key] = swap(payload.get(key))
    for key in ("inputs", "dependencies"):
        if payload.get(key):
            changed[key] = [swap(t) for t in payload[key]]
    local_output = None
    output = payload.get("output")
    if isinstance(output, str) and not output.startswith("share="):
        out = PurePosixPath(output)
        local_output = str(out.parent) if out.suffix else output
        changed["output"] = f"share={vol}/{folder}/out/{out.name if out.suffix else ''}".rstrip("/")
    changed = {k: v for k, v in changed.items() if v is not None}
    return changed, local_output
