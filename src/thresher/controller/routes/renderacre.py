"""A renderacre-compatible submission route: `POST /renderacre/v1/jobs`.

renderacre's Python client (`renderacre.submit_job(url, job_json)`) posts its job JSON to
`{url}/v1/jobs`. It sends no headers of its own, but it turns a URL's user information into
an `Authorization: Basic` header, so the token goes there, not into the path:
`http://thresher:<token>@controller:8420/renderacre` (any user name; the password is the
token). A `Bearer` header works too. The old form, `/renderacre/<token>/v1/jobs`, still works
but puts the token in the request line, where proxies and access logs keep it
(docs/security.md says how to keep it out of them). Two job shapes arrive:

- an OpenJD job (`renderacre.openjd_job(name, template_yaml, parameters_json)`): `openjd`
  carries the template, its parameter values, path mapping rules and template folder; it is
  submitted as `POST /api/v1/templates/jobs` would;
- a command job (`renderacre.command_job(name, executable, args)`): each entry of `tasks`
  becomes a block of one task running `[executable, *args]` (never through a shell); a task's
  `dependencies` (task names) become block dependencies, `timeout_seconds` the block's
  maximum run time, `env` the job's environment (tasks with different environments get theirs
  through `env K=V ...`), `working_dir` the job's working directory.

`priority` 1-100 is the job's priority (0, renderacre's default, means Thresher's default of
50); `max_retries` the retries of a failed task. The answer is `{"id": "<job id>", ...}`; an
error is JSON `{"error": code, "message": text, "errors": [...]}`.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from thresher.controller.auth import Caller
from thresher.controller.errors import Unauthorized
from thresher.controller.farm import Farm
from thresher.controller.routes.deps import authorize
from thresher.controller.routes.templates import template_error_body
from thresher.core.errors import Forbidden, InvalidInput, ThresherDomainError
from thresher.core.model import JobRecord
from thresher.schemas import api
from thresher.schemas import openjd as schema

router = APIRouter(prefix="/renderacre", tags=["renderacre"])

_STATUS = {"invalid": 422, "invalid_template": 422, "not_found": 404, "forbidden": 403}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def header_token(request: Request) -> str | None:
    """The token of an `Authorization: Basic` (its password) or `Bearer` header, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


@router.post("/v1/jobs", status_code=201)
async def submit(request: Request) -> JSONResponse:
    """Submit a renderacre job; the token in the URL's user information (Basic) or Bearer."""
    token = header_token(request)
    if token is None:
        return _error(
            401, "unauthorized", "this needs the token as the URL's password or a Bearer header"
        )
    return await _submit_as(request, token)


@router.post("/{token}/v1/jobs", status_code=201, deprecated=True)
async def submit_token_in_path(token: str, request: Request) -> JSONResponse:
    """The old form, token in the path (it lands in access logs): use /renderacre/v1/jobs."""
    return await _submit_as(request, token)


async def _submit_as(request: Request, token: str) -> JSONResponse:
    try:
        caller = await authorize(request, token)
    except Unauthorized:
        return _error(401, "unauthorized", "the token is not known, expired or was revoked")
    except Forbidden as exc:
        return _error(403, "forbidden", exc.message)
    farm = request.app.state.farm
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "invalid", "the request body is not JSON")
    if not isinstance(body, dict):
        return _error(422, "invalid", "the job must be a JSON object")
    try:
        job = await farm.call(_submit, farm, caller, body)
    except ThresherDomainError as exc:
        issues = template_error_body(exc) if isinstance(exc, InvalidInput) else None
        extra = {"errors": [i.model_dump() for i in issues.errors]} if issues else {}
        return _error(_STATUS.get(exc.code, 400), exc.code, exc.message, field=exc.field, **extra)
    answer = {
        "id": str(job.id),
        "job_id": job.id,
        "name": job.spec.name,
        "status": job.status.value,
    }
    return JSONResponse(answer, status_code=201)


def _submit(farm: Farm, caller: Caller, body: dict[str, Any]) -> JobRecord:
    name = str(body.get("name") or "")
    if not name:
        raise InvalidInput("a job needs a name", field="name")
    priority = _priority(body.get("priority"))
    retries = _int(body.get("max_retries"), field="max_retries", default=3)
    if body.get("openjd"):
        return _submit_openjd(farm, caller, body["openjd"], name, priority, retries)
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InvalidInput("a job needs 'openjd' or a non-empty 'tasks' list", field="tasks")
    try:
        job = command_job(name, tasks, priority=priority, retries=retries)
    except ValueError as exc:  # pydantic's refusal of a field
        raise InvalidInput(f"the job is malformed: {exc}", field="tasks") from None
    return farm.jobs.submit(caller, job)


def _submit_openjd(
    farm: Farm, caller: Caller, spec: Any, name: str, priority: int, retries: int
) -> JobRecord:
    if not isinstance(spec, dict) or not isinstance(spec.get("template_yaml"), str):
        raise InvalidInput("'openjd' needs 'template_yaml' (text)", field="openjd.template_yaml")
    try:
        submission = schema.TemplateJobIn(
            template=spec["template_yaml"],
            parameters=dict(spec.get("parameters") or {}),
            template_dir=spec.get("template_dir"),
            path_mapping_rules=list(spec.get("path_mapping_rules") or []),
            name=name,
            priority=priority,
            retries=retries,
        )
    except ValueError as exc:
        raise InvalidInput(f"'openjd' is malformed: {exc}", field="openjd") from None
    return farm.jobs.submit_template(caller, submission)


def command_job(name: str, tasks: list[Any], *, priority: int, retries: int) -> api.JobIn:
    """renderacre command tasks as a Thresher command job: one block per task."""
    names = [
        str(t.get("name") or f"task-{i}") if isinstance(t, dict) else ""
        for i, t in enumerate(tasks)
    ]
    envs = [
        dict((t.get("command") or {}).get("env") or {}) if isinstance(t, dict) else {}
        for t in tasks
    ]
    shared_env = envs[0] if all(env == envs[0] for env in envs) else {}
    cwds = {(t.get("command") or {}).get("working_dir") for t in tasks if isinstance(t, dict)}
    blocks = []
    for i, task in enumerate(tasks):
        where = f"tasks[{i}]"
        command = task.get("command") if isinstance(task, dict) else None
        if not isinstance(command, dict) or not command.get("executable"):
            raise InvalidInput("a task needs 'command.executable'", field=f"{where}.command")
        argv = [str(command["executable"]), *(str(a) for a in command.get("args") or [])]
        if envs[i] and not shared_env:
            argv = ["env", *(f"{k}={v}" for k, v in envs[i].items()), *argv]
        unknown = [d for d in task.get("dependencies") or [] if d not in names]
        if unknown:
            raise InvalidInput(f"unknown dependency {unknown[0]!r}", field=f"{where}.dependencies")
        timeout = command.get("timeout_seconds")
        blocks.append(
            api.BlockIn(
                name=names[i],
                frames="1",
                command=[_literal(arg) for arg in argv],
                retries=_int(
                    task.get("max_retries"), field=f"{where}.max_retries", default=retries
                ),
                max_runtime_s=float(timeout) if timeout else None,
                after=[str(d) for d in task.get("dependencies") or []],
            )
        )
    cwds.discard(None)
    return api.JobIn(
        name=name,
        priority=priority,
        blocks=blocks,
        env={str(k): str(v) for k, v in shared_env.items()},
        cwd=str(cwds.pop()) if len(cwds) == 1 else None,
    )


def _literal(arg: str) -> str:
    """An argument taken as it is: Thresher's command templates read `{...}` as placeholders."""
    return arg.replace("{", "{{").replace("}", "}}")


def _priority(value: Any) -> int:
    priority = _int(value, field="priority", default=0)
    return 50 if priority <= 0 else min(priority, 100)


def _int(value: Any, *, field: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"'{field}' must be a whole number", field=field)
    return value
