"""The client of a file service (`thresher.files.service`), asynchronous, over httpx.

Errors: :class:`PeerError` (the service answered an error, or could not be reached).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from thresher.files.frames import decode, encode
from thresher.files.manifest import Manifest
from thresher.files.raw import RawError, RawReader

PREFIX = "/files/v1"


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS settings, made once per process: each client made them anew (the
    certificates loaded again: about 80 ms at the start of every pull)."""
    return httpx.create_ssl_context()


class PeerError(Exception):
    """A file service said no, or could not be reached."""


class Peer:
    """One file service, with its token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: httpx's, for every call (tests fake the network with it); without
        one, chunk batches of an ``http://`` service are read on plain streams (`raw`)."""
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            transport=transport,
            verify=_tls(),
        )
        plain = transport is None and self.url.startswith("http://")
        self._raw = RawReader(self.url, token, timeout=timeout) if plain else None

    async def aclose(self) -> None:
        if self._raw is not None:
            await self._raw.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, PREFIX + path, **kwargs)
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise PeerError(f"{self.url}{path}: {response.status_code} {response.text[:500]}")
        return response.json()

    async def missing(self, digests: Sequence[str]) -> list[str]:
        """Which of these chunks the service lacks."""
        if not digests:
            return []
        found: list[str] = (await self._json("POST", "/missing", json={"hashes": list(digests)}))[
            "missing"
        ]
        return found

    async def put_chunks(self, chunks: Sequence[tuple[str, bytes | memoryview]]) -> int:
        """Send a batch of chunks; the service verifies each. The bytes it stored anew."""
        body = b"".join(encode(chunks))
        answer = await self._json("POST", "/chunks", content=body)
        return int(answer["stored_bytes"])

    async def read_chunks(
        self, digests: Sequence[str]
    ) -> AsyncIterator[tuple[str, bytes | bytearray | memoryview]]:
        """The chunks asked for, in order, as the service sends them (not checked here)."""
        if self._raw is not None:
            try:
                async for digest, data in self._raw.read(digests):
                    yield digest, data
            except (OSError, TimeoutError, RawError) as exc:
                raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            return
        request = self._http.build_request(
            "POST", PREFIX + "/chunks/read", json={"hashes": list(digests)}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            if not response.is_success:
                await response.aread()
                raise PeerError(f"{self.url}: {response.status_code} {response.text[:500]}")
            async for digest, view in decode(response.aiter_raw()):
                yield digest, view
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        finally:
            await response.aclose()

    async def put_manifest(self, name: str, manifest: Manifest) -> str:
        answer = await self._json("PUT", f"/manifests/{name}", content=manifest.to_json())
        return str(answer["hash"])

    async def manifest(self, name: str) -> Manifest | None:
        try:
            response = await self._http.get(f"{PREFIX}/manifests/{name}")
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise PeerError(f"{self.url}: {response.status_code} {response.text[:500]}")
        return Manifest.from_json(response.content)

    async def checkin_progress(
        self,
        name: str,
        run: str,
        *,
        files: int,
        chunks: int,
        want_bytes: int,
        want_files: int,
        wait: float,
    ) -> dict[str, Any]:
        """What checkin `run` found after `files` whole files and `chunks` chunks of the next
        (`GET /checkins/{name}`), once that is `want_bytes` bytes or `want_files` whole files,
        or after at most `wait` seconds."""
        params: dict[str, str | int | float] = {
            "run": run,
            "files": files,
            "chunks": chunks,
            "want_bytes": want_bytes,
            "want_files": want_files,
            "wait": wait,
        }
        try:
            response = await self._http.get(
                f"{PREFIX}/checkins/{name}", params=params, timeout=wait + 60
            )
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise PeerError(f"{self.url}: {response.status_code} {response.text[:500]}")
        answer: dict[str, Any] = response.json()
        return answer

    async def call(self, path: str, body: dict[str, Any]) -> Any:
        """Any other JSON call (checkin, pull)."""
        return await self._json("POST", path, json=body)
