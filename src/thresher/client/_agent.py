"""`AgentClient`: the workers' side of the API (register, poll, report), asynchronous."""

from __future__ import annotations

from typing import Any

import httpx

from thresher.client._errors import raise_for, translate
from thresher.schemas import api, engines


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

    async def aclose(self) -> None:
        await self._http.aclose()

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
        response = await self._post(
            "/api/v1/agent/poll", body.model_dump(), timeout=body.wait_s + self._timeout
        )
        return api.PollOut.model_validate(response.json())

    async def report(self, body: api.ReportIn) -> api.PollOut:
        response = await self._post("/api/v1/agent/report", body.model_dump())
        return api.PollOut.model_validate(response.json())

    async def finish(self, body: api.FinishIn) -> None:
        await self._post(f"/api/v1/agent/attempts/{body.attempt_id}/finish", body.model_dump())

    async def output(self, body: api.OutputBatch) -> None:
        await self._post(f"/api/v1/agent/attempts/{body.attempt_id}/output", body.model_dump())
