"""`Client`: the people's API (jobs, tasks, workers, tokens) over httpx."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from thresher.client._accsyn import AccsynCalls
from thresher.client._events import EventsMixin
from thresher.client._security import SecurityCalls
from thresher.client._sites import SitesCalls
from thresher.schemas import api
from thresher.schemas import engines as eng
from thresher.schemas import monitor as mon
from thresher.schemas import openjd as ojd

M = TypeVar("M", bound=BaseModel)
#: A job's final states, as the API names them.
FINAL = frozenset({"succeeded", "failed", "canceled"})
#: The longest one wait request is held (the controller's limit is 60 s).
WAIT_PIECE_S = 50.0


class Client(AccsynCalls, EventsMixin, SecurityCalls, SitesCalls):
    """A connection to a Thresher controller, answering typed results (`thresher.schemas.api`).

    >>> client = Client("http://127.0.0.1:8420", token)        # doctest: +SKIP
    >>> job = client.submit("hello", ["echo", "{frame}"], frames="1-10")  # doctest: +SKIP
    """

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        query = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._call("GET", path, params=query).json())

    def _post(self, model: type[M], path: str, body: Any = None) -> M:
        return model.model_validate(self._call("POST", path, json=body).json())

    # -- the monitor's reads (statistics, estimates, task runs, resources) ---------------------

    def stats(self, *, since: float = 0.0, until: float | None = None) -> mon.StatsOut:
        return self._get(mon.StatsOut, "/api/v1/stats", since=since, until=until)

    def eta(self, job_id: int) -> mon.EtaOut:
        return self._get(mon.EtaOut, f"/api/v1/jobs/{job_id}/eta")

    def runs(self, job_id: int, *, block: int = 0) -> mon.BlockRunsOut:
        return self._get(mon.BlockRunsOut, f"/api/v1/jobs/{job_id}/blocks/{block}/runs")

    def act_on_range(
        self, job_id: int, first: int, last: int, action: str, *, block: int = 0
    ) -> mon.RangeOut:
        body = {"first": first, "last": last, "action": action}
        return self._post(mon.RangeOut, f"/api/v1/jobs/{job_id}/blocks/{block}/range", body)

    def samples(self, worker: str, *, since: float = 0.0) -> mon.SampleHistory:
        return self._get(mon.SampleHistory, f"/api/v1/workers/{worker}/samples", since=since)

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
        filters: str | None = None,
        limits: Sequence[str] | None = None,
        max_running: int | None = None,
        max_running_per_host: int | None = None,
        preempt: bool = False,
        after_name: str | None = None,
        after_global: bool = False,
        capacity: int | None = None,
        min_runtime_s: float | None = None,
        preview_every: int | None = None,
        errors_to_avoid: int | None = None,
        forgive_s: float | None = None,
        image: str | None = None,
    ) -> api.JobOut:
        """Submit a command job; `command` is an argv template with {start} {end} {frame}
        {frames} placeholders; with `image`, its tasks run in that container image. The
        scheduling options are described in docs/scheduling.md: `filters` such as
        ``ram:>32GB,pool:@lighting``, `limits` (license names) each task holds, caps,
        `after_name` (a glob over your job names; `after_global`: everyone's)."""
        return self.submit_job(
            api.JobIn(
                filters=filters,
                limits=None if limits is None else list(limits),
                max_running=max_running,
                max_running_per_host=max_running_per_host,
                preempt=preempt,
                after_name=after_name,
                after_global=after_global,
                capacity=capacity,
                min_runtime_s=min_runtime_s,
                preview_every=preview_every,
                errors_to_avoid=errors_to_avoid,
                forgive_s=forgive_s,
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
                container=None if image is None else api.ContainerIn(image=image),
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
        found: list[api.JobOut] = []
        while len(found) < limit:  # a page may hold fewer: the controller bounds its bytes
            page = self._get(api.JobList, "/api/v1/jobs", **{**params, "offset": offset})
            found += page.jobs
            if not page.more:
                break
            offset = page.next_offset
        return found[:limit]

    def job(self, job_id: int) -> api.JobOut:
        return self._get(api.JobOut, f"/api/v1/jobs/{job_id}")

    def wait(self, job_id: int, *, timeout_s: float | None = None) -> api.JobOut:
        """The job once it is final (succeeded, failed, canceled), or as it is when
        `timeout_s` has passed (None: however long it takes). The controller answers the
        moment the job ends (`GET /jobs/{id}/wait`, held up to `WAIT_PIECE_S` at a time)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = WAIT_PIECE_S if deadline is None else deadline - time.monotonic()
            piece = max(0.0, min(WAIT_PIECE_S, left))
            data = self._call(
                "GET",
                f"/api/v1/jobs/{job_id}/wait",
                params={"timeout_s": round(piece, 3)},
                timeout=piece + self._timeout,  # the hold, then the usual time to answer
            ).json()
            job = api.JobOut.model_validate(data)
            if job.status in FINAL or (deadline is not None and time.monotonic() >= deadline):
                return job

    def why(self, job_id: int) -> api.WhyOut:
        """Why the job waits: what holds it, else each block's reasons over the workers."""
        return self._get(api.WhyOut, f"/api/v1/jobs/{job_id}/why")

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

    # -- tasks ----------------------------------------------------------------------------------

    def tasks(
        self, job_id: int, *, block: int = 0, offset: int = 0, limit: int = 100
    ) -> api.TaskPage:
        return self._get(
            api.TaskPage, f"/api/v1/jobs/{job_id}/tasks", block=block, offset=offset, limit=limit
        )

    def task(self, job_id: int, index: int, *, block: int = 0) -> api.TaskDetail:
        return self._get(api.TaskDetail, f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}")

    def task_why(self, job_id: int, index: int, *, block: int = 0) -> api.TaskWhyOut:
        """Why the task waits, or where it is."""
        return self._get(api.TaskWhyOut, f"/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/why")

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

    def create_token(
        self,
        name: str,
        role: str = "artist",
        *,
        label: str | None = None,
        expires_in_s: float | None = None,
    ) -> api.TokenOut:
        """Admins: a token for anyone (`name`), of any role but worker; shown this once."""
        body = {"name": name, "role": role, "label": label, "expires_in_s": expires_in_s}
        return self._post(api.TokenOut, "/api/v1/admin/tokens", body)

    # -- scheduling: workers' lanes and NIMBY, limits, users, pools, error hosts -----------------

    def _put(self, model: type[M], path: str, body: Any) -> M:
        return model.model_validate(self._call("PUT", path, json=body).json())

    def _delete(self, model: type[M], path: str, **params: Any) -> M:
        query = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._call("DELETE", path, params=query).json())

    def set_lane(self, worker: str, lane: int, engines: Sequence[str] | None) -> api.WorkerOut:
        """Admins: what a worker's lane runs (engine names or job kinds; None: anything),
        from the worker's next poll on."""
        body = {"engines": None if engines is None else list(engines)}
        return self._put(api.WorkerOut, f"/api/v1/workers/{worker}/lanes/{lane}", body)

    def set_pools(self, worker: str, pools: Sequence[str]) -> api.WorkerOut:
        """Put a worker in these pools from now on, across its restarts (admins)."""
        body = {"pools": list(pools)}
        return self._put(api.WorkerOut, f"/api/v1/workers/{worker}/pools", body)

    def reset_pools(self, worker: str) -> api.WorkerOut:
        """Back to the pools the worker declared."""
        return self._delete(api.WorkerOut, f"/api/v1/workers/{worker}/pools")

    def reset_lane(self, worker: str, lane: int) -> api.WorkerOut:
        """Admins: the lane runs what the worker declared again."""
        return self._delete(api.WorkerOut, f"/api/v1/workers/{worker}/lanes/{lane}")

    def pause_worker(self, worker: str) -> api.WorkerOut:
        """NIMBY: the worker finishes its tasks and takes no new ones."""
        return self._post(api.WorkerOut, f"/api/v1/workers/{worker}/pause")

    def stop_worker(self, worker: str) -> api.WorkerOut:
        """NIMBY: the worker also stops its tasks, which go back to the queue."""
        return self._post(api.WorkerOut, f"/api/v1/workers/{worker}/stop")

    def resume_worker(self, worker: str) -> api.WorkerOut:
        return self._post(api.WorkerOut, f"/api/v1/workers/{worker}/resume")

    def clear_sick(self, worker: str) -> api.WorkerOut:
        """Admins: a worker marked sick takes work again."""
        return self._delete(api.WorkerOut, f"/api/v1/workers/{worker}/sick")

    def limits(self) -> list[api.LimitOut]:
        return self._get(api.LimitList, "/api/v1/limits").limits

    def limit(self, name: str) -> api.LimitOut:
        return self._get(api.LimitOut, f"/api/v1/limits/{name}")

    def set_limit(
        self,
        name: str,
        *,
        max_total: int | None = None,
        max_per_host: int | None = None,
        max_hosts: int | None = None,
    ) -> api.LimitOut:
        """Admins: create a limit or set its maximums (None: no maximum)."""
        body = {"max_total": max_total, "max_per_host": max_per_host, "max_hosts": max_hosts}
        return self._put(api.LimitOut, f"/api/v1/limits/{name}", body)

    def delete_limit(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/limits/{name}")

    def users(self) -> list[api.UserOut]:
        return self._get(api.UserList, "/api/v1/users").users

    def set_user(
        self, name: str, *, priority: int = 0, max_running: int | None = None
    ) -> api.UserOut:
        """Admins: a user's priority (0-100) and maximum of running tasks."""
        body = {"priority": priority, "max_running": max_running}
        return self._put(api.UserOut, f"/api/v1/users/{name}", body)

    def pools(self) -> list[api.PoolOut]:
        return self._get(api.PoolList, "/api/v1/pools").pools

    def error_hosts(self, job_id: int) -> list[api.ErrorHostOut]:
        """The hosts the job's blocks had errors from; `avoided` ones get none of its tasks."""
        return self._get(api.ErrorHostList, f"/api/v1/jobs/{job_id}/error-hosts").hosts

    def reset_error_hosts(
        self, job_id: int, *, block: int | None = None, worker: str | None = None
    ) -> int:
        """Forgive the job's error hosts now (of one block, of one worker); returns how many
        errors were forgotten."""
        path = f"/api/v1/jobs/{job_id}/error-hosts"
        return self._delete(api.ResetOut, path, block=block, worker=worker).forgotten

    # -- engines --------------------------------------------------------------------------------

    def engines(self, *, where: str | None = None) -> list[eng.EngineOut]:
        """Every engine, or those matching a where clause such as ``type=compute``."""
        return self._get(eng.EngineList, "/api/v1/engines", where=where).engines

    def engine(self, name: str) -> eng.EngineDetail:
        """One engine with its current source and every revision."""
        return self._get(eng.EngineDetail, f"/api/v1/engines/{name}")

    def engine_source(self, name: str, revision: int) -> eng.EngineSourceOut:
        return self._get(eng.EngineSourceOut, f"/api/v1/engines/{name}/revisions/{revision}")

    def publish_engine(self, name: str, source: str) -> eng.EngineDetail:
        """Admins: publish ``source`` as the next revision of ``name`` (it becomes current)."""
        return self._post(eng.EngineDetail, f"/api/v1/engines/{name}/revisions", {"source": source})

    def enable_engine(self, name: str) -> eng.EngineDetail:
        return self._post(eng.EngineDetail, f"/api/v1/engines/{name}/enable")

    def disable_engine(self, name: str) -> eng.EngineDetail:
        return self._post(eng.EngineDetail, f"/api/v1/engines/{name}/disable")

    def rollback_engine(self, name: str, revision: int) -> eng.EngineDetail:
        """Admins: make an existing revision current again (0: the built-in one)."""
        return self._post(
            eng.EngineDetail, f"/api/v1/engines/{name}/rollback", {"revision": revision}
        )

    def submit_engine(
        self,
        engine: str,
        *,
        name: str | None = None,
        input: str | None = None,
        range: str | None = None,
        output: str | None = None,
        bucketsize: int | None = None,
        parameters: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> api.JobOut:
        """Submit an engine job; ``fields`` are any other job fields (``priority``,
        ``after``, ``filters``, ``envs``, ``dependencies``, ``priority_frames``, ...)."""
        payload: dict[str, Any] = {
            "engine": engine,
            "name": name,
            "input": input,
            "range": range,
            "output": output,
            "parameters": dict(parameters or {}),
            **fields,
        }
        if bucketsize is not None:
            payload["settings"] = {**payload.get("settings", {}), "task_bucketsize": bucketsize}
        return self.create_job({k: v for k, v in payload.items() if v is not None})

    # -- OpenJD templates -----------------------------------------------------------------------

    def submit_template(
        self,
        template: str | Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        env_templates: Sequence[str | Mapping[str, Any]] = (),
        **fields: Any,
    ) -> api.JobOut:
        """Submit an OpenJD job template (YAML or JSON text, or a mapping) with parameter
        values and environment templates. ``fields`` are other fields of the submission
        (``priority``, ``retries``, ``after``, ``filters``, ``path_mapping_rules``,
        ``template_dir``, ``name``...). A refused template raises InvalidRequest whose
        ``errors`` list every issue with its location."""
        body = self._template_body(template, parameters, env_templates, fields)
        return self._post(api.JobOut, "/api/v1/templates/jobs", body)

    def check_template(
        self,
        template: str | Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        env_templates: Sequence[str | Mapping[str, Any]] = (),
        **fields: Any,
    ) -> ojd.TemplateCheckOut:
        """Validate a template with parameter values; the steps and tasks it would make."""
        body = self._template_body(template, parameters, env_templates, fields)
        return self._post(ojd.TemplateCheckOut, "/api/v1/templates/check", body)

    def create_access_key(self, name: str, role: str = "artist") -> dict[str, str]:
        """Admins: an AWS-style key pair (``access_key_id``, ``secret_access_key``) for the
        Deadline Cloud compatible routes, acting as a new token of ``role``."""
        body = {"name": name, "role": role}
        data: dict[str, str] = self._call("POST", "/api/v1/admin/access-keys", json=body).json()
        return data

    @staticmethod
    def _template_body(
        template: str | Mapping[str, Any],
        parameters: Mapping[str, Any] | None,
        env_templates: Sequence[str | Mapping[str, Any]],
        fields: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            "template": template if isinstance(template, str) else dict(template),
            "parameters": dict(parameters or {}),
            "environments": [e if isinstance(e, str) else dict(e) for e in env_templates],
            **{k: v for k, v in fields.items() if v is not None},
        }
