"""`AgentClient`: the workers' side of the API (register, poll, report, goodbye), asynchronous."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from thresher.client._errors import NotFound, TransportError, error_for, raise_for, translate
from thresher.client._session import controller_urls, tls_verification
from thresher.client._wire import WireClient, WireError, lean_target
from thresher.schemas import api, engines

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
log = logging.getLogger("thresher.client")


class AgentClient:
    """What a worker says to the controller. Polls may be held open for `wait_s` seconds.

    `url` names one controller or several (a list, or separated by commas) serving one farm:
    a call that cannot reach the current one goes on to the next at once, and stays there."""

    def __init__(
        self,
        url: str | Sequence[str],
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        enrol_code: str | None = None,
        ca_file: str | None = None,
        keep_token: Callable[[str], None] | None = None,
    ) -> None:
        self.urls = controller_urls(url)
        self._at = 0
        self._timeout = timeout
        self._transport = transport
        self._ca_file = ca_file
        self.token = token
        # A one-time enrolment code: spent by the first registration, which gets the worker
        # its own token (handed to `keep_token`, so a restarted worker re-attaches with it).
        self.enrol_code = enrol_code
        self._keep_token = keep_token
        self._connect(self.urls[0])

    def _connect(self, url: str) -> None:
        self.url = url
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=self._timeout,
            transport=self._transport,
            verify=tls_verification(url, ca_file=self._ca_file),
        )
        # Polls and reports, many per second with short tasks, go on a lean HTTP/1.1 client
        # where the URL allows it (plain http, no proxy) and no transport was given.
        target = lean_target(url) if self._transport is None else None
        self._wire = (
            WireClient(*target, base_path=urlsplit(url).path) if target is not None else None
        )

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        await self._http.aclose()

    async def _failing_over(self, call: Callable[[], Awaitable[R]]) -> R:
        """`call()`, on the next controller and the next after a transport error, until each
        was tried once. The calls are safe to send again: a poll or report is reconciled with
        what the controller holds, a finish already taken in is answered as stale."""
        tried = 1
        while True:
            at = self._at
            try:
                return await call()
            except TransportError as exc:
                if tried >= len(self.urls):
                    raise
                tried += 1
                if at != self._at:  # a call beside this one moved on already
                    continue
                failed, old_http, old_wire = self.url, self._http, self._wire
                self._at = (self._at + 1) % len(self.urls)
                self._connect(self.urls[self._at])
                if old_wire is not None:
                    await old_wire.aclose()
                await old_http.aclose()
                log.warning("controller %s failed (%s): trying %s", failed, exc, self.url)

    async def _call(self, model: type[M], path: str, body: BaseModel, *, timeout: float) -> M:
        """POST a model's JSON and read the answer's: the lean path for the hot calls."""
        return await self._failing_over(lambda: self._call_here(model, path, body, timeout=timeout))

    async def _call_here(self, model: type[M], path: str, body: BaseModel, *, timeout: float) -> M:
        if self._wire is None:
            response = await self._post_here(path, body.model_dump(mode="json"), timeout=timeout)
            return model.model_validate_json(response.content)
        try:
            answer = await self._wire.post(
                path, body.model_dump_json().encode(), token=self.token, timeout=timeout
            )
        except TimeoutError as exc:
            raise TransportError(
                f"cannot reach the controller: no answer in {timeout:.0f}s"
            ) from exc
        except (OSError, asyncio.IncompleteReadError, WireError) as exc:
            raise TransportError(
                f"cannot reach the controller: {exc.__class__.__name__}: {exc}"
            ) from exc
        if not 200 <= answer.status < 300:
            raise error_for(answer.status, answer.content, answer.reason)
        return model.model_validate_json(answer.content)

    async def _post(self, path: str, body: Any, *, timeout: float | None = None) -> httpx.Response:
        return await self._failing_over(lambda: self._post_here(path, body, timeout=timeout))

    async def _post_here(
        self, path: str, body: Any, *, timeout: float | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self._http.post(
                path, json=body, headers=headers, timeout=timeout or self._timeout
            )
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return response

    async def engine_source(self, name: str, revision: int) -> engines.EngineSourceOut:
        """The source of one engine revision (the worker caches it by its hash)."""
        return await self._failing_over(lambda: self._engine_source_here(name, revision))

    async def _engine_source_here(self, name: str, revision: int) -> engines.EngineSourceOut:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = await self._http.get(
                f"/api/v1/agent/engines/{name}/{revision}", headers=headers
            )
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return engines.EngineSourceOut.model_validate(response.json())

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = await self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return response.json()

    async def volumes(self) -> api.VolumeList:
        """Every volume with its roots per site and OS (share paths resolve with them)."""
        return api.VolumeList.model_validate(await self._request("GET", "/api/v1/volumes"))

    async def sites(self) -> api.AgentSiteList:
        """Sites with their file services (and the tokens they take)."""
        return api.AgentSiteList.model_validate(await self._request("GET", "/api/v1/agent/sites"))

    async def claim_sync(self, job_id: int, site: str) -> api.SyncClaimOut:
        """Whether this worker runs the job's download sync at `site` now."""
        found = await self._request("POST", f"/api/v1/agent/sync/{job_id}/{site}")
        return api.SyncClaimOut.model_validate(found)

    async def report_sync(self, job_id: int, site: str, body: api.SyncReportIn) -> api.JobSiteOut:
        found = await self._request(
            "PUT", f"/api/v1/agent/sync/{job_id}/{site}", body.model_dump(mode="json")
        )
        return api.JobSiteOut.model_validate(found)

    async def register(self, body: api.RegisterIn) -> api.RegisterOut:
        """Enrol with the one-time code, else the current (enrolment or own) token; afterwards
        the worker's own token is used."""
        if self.enrol_code is not None:
            response = await self._post(
                "/api/v1/agent/enrol", {**body.model_dump(), "code": self.enrol_code}
            )
            self.enrol_code = None  # spent, whatever happens next
        else:
            response = await self._post("/api/v1/agent/register", body.model_dump())
        out = api.RegisterOut.model_validate(response.json())
        self.token = out.token
        if self._keep_token is not None:
            self._keep_token(out.token)
        return out

    async def poll(self, body: api.PollIn) -> api.PollOut:
        return await self._call(
            api.PollOut, "/api/v1/agent/poll", body, timeout=body.wait_s + self._timeout
        )

    async def report(self, body: api.ReportIn) -> api.PollOut:
        return await self._call(api.PollOut, "/api/v1/agent/report", body, timeout=self._timeout)

    async def sample(self, values: dict[str, float]) -> bool:
        """An idle worker's resource sample (its poll held). False when the controller knows
        no such route (an older one answers 404)."""
        try:
            await self._post("/api/v1/agent/sample", {"sample": values})
        except NotFound:
            return False
        return True

    async def goodbye(self) -> bool:
        """Say this worker is going away: the controller takes it offline and requeues what it
        held at once, rather than when its lease ends. False when the controller knows no
        goodbye (one older than this call answers 404)."""
        try:
            await self._post("/api/v1/agent/goodbye", {})
        except NotFound:
            return False
        return True
