"""Share paths on a worker: ``share=NAME/rel/path`` in an assignment resolved to this worker's
site's root for the volume, before the task runs.

Every string of the payload (engine input, inputs, output, dependencies, parameters, OpenJD
parameter values, command arguments), the working directory and the environment are resolved
(`thresher.core.volumes`). Each resolved path is then checked where the files are: its real
path (symbolic links followed, `os.path.realpath`) must stay under the real path of its root, so
a link inside the volume that points out of it fails the task. The volumes come from the
controller (``GET /api/v1/volumes``), kept for `ttl_s` seconds.

`local_root` is the one call others need (a container mounting a volume's root, a file service
serving it): the root of a volume at a site for an OS.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

from thresher.core.volumes import Volume, VolumeError, resolve_value
from thresher.schemas import api


class VolumeSource(Protocol):
    async def volumes(self) -> api.VolumeList: ...


def volumes_of(listed: api.VolumeList) -> dict[str, Volume]:
    return {
        v.name: Volume(name=v.name, roots=v.roots, description=v.description)
        for v in listed.volumes
    }


def local_root(volumes: Mapping[str, Volume], name: str, *, site: str, os_name: str) -> str:
    """The root of volume `name` at `site` for `os_name`; :class:`VolumeError` if it has none."""
    volume = volumes.get(name)
    if volume is None:
        raise VolumeError(f"unknown volume {name!r}")
    root = volume.root_for(site, os_name)
    if root is None:
        raise VolumeError(f"volume {name!r} has no root at site {site!r} for {os_name}")
    return root


def needs_shares(a: api.AssignmentOut) -> bool:
    """Whether the assignment holds a share path anywhere (cheap: one scan of its text)."""
    return "share=" in a.model_dump_json(include={"payload", "env", "cwd"})


def check_inside(pairs: list[tuple[str, str]]) -> None:
    """Each (root, path): the path's real location stays under the root's (blocking I/O)."""
    for root, path in pairs:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise VolumeError(f"{path} leaves its volume root {root} (it resolves to {real})")


class ShareResolver:
    """Resolves the share paths of this worker's assignments (one per worker)."""

    def __init__(
        self, source: VolumeSource, *, site: str, os_name: str, ttl_s: float = 10.0
    ) -> None:
        self.source, self.site, self.os_name, self.ttl_s = source, site, os_name, ttl_s
        self._volumes: dict[str, Volume] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def volumes(self) -> dict[str, Volume]:
        async with self._lock:
            now = time.monotonic()
            if self._volumes is None or now - self._read_at > self.ttl_s:
                self._volumes = volumes_of(await self.source.volumes())
                self._read_at = now
            return self._volumes

    async def resolve(self, a: api.AssignmentOut) -> api.AssignmentOut:
        """The assignment with its share paths resolved; :class:`VolumeError` says why not."""
        volumes = await self.volumes()
        fields: dict[str, Any] = {"payload": a.payload, "env": a.env, "cwd": a.cwd}
        resolved, pairs = resolve_value(fields, volumes, site=self.site, os_name=self.os_name)
        await asyncio.to_thread(check_inside, pairs)
        return a.model_copy(update=resolved)
