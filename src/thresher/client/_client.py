"""`Client`: the people's API (jobs, tasks, workers, tokens) over httpx."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from thresher.client._errors import raise_for, translate
from thresher.schemas import api

M = TypeVar("M", bound=BaseModel)


class Client:
    """A connection to a Thresher controller.

    >>> client = Client("http://127.0.0.1:8420", token)        # doctest: +SKIP
    >>> job = client.submit("hello", ["echo", "{frame}"], frames="1-10")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        raise_for(response)
        return response

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        query = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._call("GET", path, params=query).json())

    def _post(self, model: type[M], path: str, body: Any = None) -> M:
        return model.model_validate(self._call("POST", path, json=body).json())

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/healthz").json()
        return data

    # -- jobs -----------------------------------------------------------------------------------

    def submit_job(self, job: api.JobIn) -> api.JobOut:
        return self._post(api.JobOut, "/api/v1/jobs", job.model_dump(exclude_none=True))

    def submit(
        self,
        name: str,
        command: Sequence[str],
        *,
        frames: str = "1",
        chunk: int = 1,
        priority: int = 50,
        retries: int = 3,
        after: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        priority_frames: str | None = None,
        max_runtime_s: float | None = None,
        paused: bool = False,
    ) -> api.JobOut:
        """Submit a command job; `command` is an argv template with {start} {end} {frame}
        {frames} placeholders."""
        return self.submit_job(
            api.JobIn(
                name=name,
                command=list(command),
                frames=frames,
                chunk=chunk,
                priority=priority,
                retries=retries,
                after=list(after),
                env=dict(env or {}),
                cwd=cwd,
                priority_frames=priority_frames,
                max_runtime_s=max_runtime_s,
                paused=paused,
            )
        )

    def jobs(
        self,
        *,
        status: Sequence[str] = (),
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[api.JobOut]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = list(status)
        if owner:
            params["owner"] = owner
        return self._get(api.JobList, "/api/v1/jobs", **params).jobs

    def job(self, job_id: int) -> api.JobOut:
        return self._get(api.JobOut, f"/api/v1/jobs/{job_id}")

    def pause(self, job_id: int) -> api.ActionOut:
        return self._post(api.ActionOut, f"/api/v1/jobs/{job_id}/pause")

    def resume(self, job_id: int) -> api.ActionOut:
        return self._post(api.ActionOut, f"/api/v1/jobs/{job_id}/resume")

    def cancel(self, job_id: int) -> api.ActionOut:
        return self._post(api.ActionOut, f"/api/v1/jobs/{job_id}/cancel")

    def retry(self, job_id: int) -> api.ActionOut:
        return self._post(api.ActionOut, f"/api/v1/jobs/{job_id}/retry")

    def set_priority(self, job_id: int, priority: int) -> api.ActionOut:
        body = {"priority": priority}
        response = self._call("PUT", f"/api/v1/jobs/{job_id}/priority", json=body)
        return api.ActionOut.model_validate(response.json())

    def delete(self, job_id: int) -> None:
        self._call("DELETE", f"/api/v1/jobs/{job_id}")

    # -- tasks ----------------------------------------------------------------------------------

    def tasks(
        self, job_id: int, *, block: int = 0, offset: int = 0, limit: int = 100
    ) -> api.TaskPage:
        return self._get(
            api.TaskPage, f"/api/v1/jobs/{job_id}/tasks", block=block, offset=offset, limit=limit
        )

    def task(self, job_id: int, index: int, *, block: int = 0) -> api.TaskDetail:
        return self._get(api.TaskDetail, f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}")

    def attempts(self, job_id: int) -> list[api.AttemptOut]:
        """Every attempt of the job, oldest first."""
        return self._get(api.AttemptList, f"/api/v1/jobs/{job_id}/attempts").attempts

    def retry_task(self, job_id: int, index: int, *, block: int = 0) -> None:
        self._call("POST", f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/retry")

    def skip_task(self, job_id: int, index: int, *, block: int = 0) -> None:
        self._call("POST", f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/skip")

    def log(self, job_id: int, index: int, *, block: int = 0, after: int = 0) -> list[api.LogLine]:
        path = f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/log"
        return self._get(api.LogOut, path, after=after).lines

    # -- workers and tokens ---------------------------------------------------------------------

    def workers(self) -> list[api.WorkerOut]:
        return self._get(api.WorkerList, "/api/v1/workers").workers

    def worker(self, name: str) -> api.WorkerOut:
        return self._get(api.WorkerOut, f"/api/v1/workers/{name}")

    def enable_worker(self, name: str) -> api.WorkerOut:
        return self._post(api.WorkerOut, f"/api/v1/workers/{name}/enable")

    def disable_worker(self, name: str) -> api.WorkerOut:
        return self._post(api.WorkerOut, f"/api/v1/workers/{name}/disable")

    def create_token(self, name: str, role: str = "user") -> api.TokenOut:
        return self._post(api.TokenOut, "/api/v1/admin/tokens", {"name": name, "role": role})
