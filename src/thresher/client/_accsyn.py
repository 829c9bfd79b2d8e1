"""accsyn-style calls on plain payloads: `create`, `find`, `update` and `delete`, by entity."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from thresher.client._session import Session
from thresher.schemas import api
from thresher.schemas import engines as eng
from thresher.schemas import submitters as sub

#: What `find` answers each entity as.
_MODELS: dict[str, Any] = {
    "job": api.JobOut,
    "task": api.TaskOut,
    "worker": api.WorkerOut,
    "engine": eng.EngineOut,
}


def _entity(text: str, allowed: tuple[str, ...], verb: str) -> str:
    kind = text.strip().lower()
    if kind not in allowed:
        raise ValueError(f"{verb}() takes {', '.join(allowed)}, not {text!r}")
    return kind


class AccsynCalls(Session):
    """`create("job", {...})`, `find("job where status=running")`, `update("job", 12,
    {"priority": 80})`, `delete("job", 12)`: the shapes accsyn's API takes, over Thresher's."""

    def create(self, entity: str, data: Mapping[str, Any]) -> Any:
        """Create something from a plain payload, as accsyn's API does.

        - ``create("job", {...})``: a job; an ``engine`` field makes it an engine job in
          accsyn's shape (``input``, ``range``, ``output``, ``settings.task_bucketsize``,
          ``parameters``, ``envs``, ``filters``, ``dependencies``); ``code`` may stand for
          ``name``, which defaults to ``"<engine>: <input file name>"``; a ``tasks`` list makes
          it a task-file job (one task per entry, each its own argv). Returns the job.
        - ``create("engine", {"name": ..., "source": ...})``: publish an engine (admins).
        """
        kind = _entity(entity, ("job", "engine"), "create")
        if kind == "engine":
            path = f"/api/v1/engines/{data.get('name', '')}/revisions"
            answer = self._call("POST", path, json={"source": str(data.get("source", ""))})
            return eng.EngineDetail.model_validate(answer.json())
        return self.create_job(data)

    def create_job(self, data: Mapping[str, Any]) -> api.JobOut:
        """A job from a plain payload (see :meth:`create`)."""
        body = dict(data)
        if "code" in body and "name" not in body:
            body["name"] = body.pop("code")
        if "name" not in body and body.get("engine"):
            stem = str(body.get("input") or "").replace("\\", "/").rsplit("/", 1)[-1]
            body["name"] = f"{body['engine']}: {stem}" if stem else str(body["engine"])
        path = "/api/v1/jobs/task-file" if "tasks" in body else "/api/v1/jobs"
        return api.JobOut.model_validate(self._call("POST", path, json=body).json())

    def find_page(self, query: str, *, offset: int = 0, limit: int = 100) -> sub.FindOut:
        """One page of what ``query`` matches, evaluated by the controller (items as JSON)."""
        params = {"q": query, "offset": offset, "limit": limit}
        return sub.FindOut.model_validate(self._call("GET", "/api/v1/find", params=params).json())

    def find(self, query: str, *, limit: int | None = None) -> list[Any]:
        """What ``query`` matches, every page (at most ``limit`` items): ``job where
        status=running``, ``task where job=12 and status=failed``, ``worker where site=hq``,
        ``engine where type=compute``. Conditions ``FIELD OP VALUE`` are joined by ``and``; OP
        is one of ``= != < <= > >= ~`` (``~``: contains). Results are typed: JobOut, TaskOut,
        WorkerOut or EngineOut. A malformed query is an InvalidRequest naming ``q``."""
        return list(self.iter_find(query, limit=limit))

    def iter_find(self, query: str, *, limit: int | None = None) -> Iterator[Any]:
        """`find`, a page at a time."""
        offset: int | None = 0
        given = 0
        while offset is not None and (limit is None or given < limit):
            size = 1000 if limit is None else min(1000, limit - given)
            page = self.find_page(query, offset=offset, limit=size)
            model = _MODELS[page.entity]
            for item in page.items:
                given += 1
                yield model.model_validate(item)
            offset = page.next_offset

    def update(self, entity: str, ref: int | str, data: Mapping[str, Any]) -> Any:
        """Change something on the fly.

        - ``update("job", 12, {...})``: ``priority``, ``name``, ``filters``, ``max_running``,
          ``max_running_per_host``, ``retries``, ``max_failed_tasks``, ``description``,
          ``state`` (``paused``, ``queued``, ``canceled``, ``retry``); accsyn's ``status``
          (``paused``/``queued``/``aborted``) stands for ``state``. Returns the job.
        - ``update("worker", "name", {"enabled": bool, "pools": [...]})``. Returns the worker.
        - ``update("engine", "name", {"enabled": bool} or {"source": ...})``.
        """
        kind = _entity(entity, ("job", "worker", "engine"), "update")
        if kind == "job":
            body = dict(data)
            if "status" in body and "state" not in body:
                status = body.pop("status")
                body["state"] = {"aborted": "canceled", "running": "queued"}.get(status, status)
            answer = self._call("PATCH", f"/api/v1/jobs/{ref}", json=body)
            return api.JobOut.model_validate(answer.json())
        if kind == "worker":
            return self._update_worker(str(ref), data)
        return self._update_engine(str(ref), data)

    def _update_worker(self, name: str, data: Mapping[str, Any]) -> api.WorkerOut:
        unknown = set(data) - {"enabled", "pools"}
        if unknown:
            raise ValueError(f"update('worker') changes enabled and pools, not {sorted(unknown)}")
        answer = None
        if "pools" in data:
            body = {"pools": list(data["pools"])}
            answer = self._call("PUT", f"/api/v1/workers/{name}/pools", json=body)
        if "enabled" in data:
            action = "enable" if data["enabled"] else "disable"
            answer = self._call("POST", f"/api/v1/workers/{name}/{action}")
        if answer is None:
            answer = self._call("GET", f"/api/v1/workers/{name}")
        return api.WorkerOut.model_validate(answer.json())

    def _update_engine(self, name: str, data: Mapping[str, Any]) -> eng.EngineDetail:
        if "source" in data:
            return self.create("engine", {"name": name, "source": data["source"]})  # type: ignore[no-any-return]
        if set(data) != {"enabled"}:
            raise ValueError("update('engine') takes enabled or source")
        action = "enable" if data["enabled"] else "disable"
        answer = self._call("POST", f"/api/v1/engines/{name}/{action}")
        return eng.EngineDetail.model_validate(answer.json())

    def delete(self, entity: str | int, ref: int | str | None = None) -> None:
        """Delete a job: ``delete("job", 12)`` (or ``delete(12)``); a limit: ``delete("limit",
        "nuke")``; a queue environment: ``delete("queue_environment", 3)``."""
        if isinstance(entity, int):
            entity, ref = "job", entity
        kind = _entity(entity, ("job", "limit", "queue_environment"), "delete")
        path = {
            "job": "/api/v1/jobs/{}",
            "limit": "/api/v1/limits/{}",
            "queue_environment": "/api/v1/admin/queue-environments/{}",
        }[kind]
        self._call("DELETE", path.format(ref))
