"""`AgentClient`: the workers' side of the API (register, poll, report, goodbye), asynchronous."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from thresher.client._errors import NotFound, TransportError, error_for, raise_for, translate
from thresher.client._wire import WireClient, WireError, lean_target
from thresher.schemas import api, engines

M = TypeVar("M", bound=BaseModel)


class AgentClient:
    """What a worker says to the controller. Polls may be held open for `wait_s` seconds."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)
        self.token = token
        # Polls and reports, many per second with short tasks, go on a lean HTTP/1.1 client
        # where the URL allows it (plain http, no proxy) and no transport was given.
        target = lean_target(self.url) if transport is None else None
        self._wire = (
            WireClient(*target, base_path=urlsplit(self.url).path) if target is not None else None
        )

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        await self._http.aclose()

    async def _call(self, model: type[M], path: str, body: BaseModel, *, timeout: float) -> M:
        """POST a model's JSON and read the answer's: the lean path for the hot calls."""
        if self._wire is None:
            response = await self._post(path, body.model_dump(mode="json"), timeout=timeout)
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
        headers = {"Authorization": f"Bearer {self.token}"}
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
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = await self._http.get(
                f"/api/v1/agent/engines/{name}/{revision}", headers=headers
            )
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return engines.EngineSourceOut.model_validate(response.json())

    async def register(self, body: api.RegisterIn) -> api.RegisterOut:
        """Enrol with the current (enrolment) token; afterwards the worker's own token is used."""
        response = await self._post("/api/v1/agent/register", body.model_dump())
        out = api.RegisterOut.model_validate(response.json())
        self.token = out.token
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
