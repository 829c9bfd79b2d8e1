"""Which roles may call each route: one entry per route, checked on every request.

The key is the route as FastAPI declares it: "METHOD /path/{param}". A route with no entry
is refused to every caller (403), so a new route is closed until its entry is written; the
permission matrix test (tests/controller/test_permissions.py) fails for it too. Ownership
(an artist's own job, the jobs of the artist's groups) is checked in the use case, which knows
the object; this table says only who may try. Adding a route: docs/security.md."""

from __future__ import annotations

import re
from collections.abc import Mapping

from thresher.controller.auth import ADMIN, ARTIST, ENROL, VIEWER, WORKER, WRANGLER, Caller
from thresher.core.errors import Forbidden

#: Who reads people's data: jobs (as visibility allows), workers, pools, limits, engines.
READ = frozenset({ADMIN, WRANGLER, ARTIST, VIEWER})
#: Who submits and acts on jobs (an artist on its own only).
SUBMIT = frozenset({ADMIN, WRANGLER, ARTIST})
#: Who runs the farm: any job, workers, pools, limits, users' priorities, enrolment codes.
WRANGLE = frozenset({ADMIN, WRANGLER})
ADMINS = frozenset({ADMIN})
#: Workers' own routes (polls, reports, engine sources).
WORKERS = frozenset({WORKER})
#: Enrolment: an enrolment token, a worker re-attaching, or an admin.
ENROLMENT = frozenset({ENROL, WORKER, ADMIN})
#: Every person with a token (their own tokens).
PEOPLE = READ

_CONVERTER = re.compile(r"\{(\w+):\w+\}")
_QUEUE = "/deadline/2023-10-12/farms/{farmId}/queues/{queueId}"
_JOB = _QUEUE + "/jobs/{jobId}"

ROUTES: dict[str, frozenset[str]] = {
    # jobs and tasks
    "POST /api/v1/jobs": SUBMIT,
    "GET /api/v1/jobs": READ,
    "GET /api/v1/jobs/{job_id}": READ,
    "DELETE /api/v1/jobs/{job_id}": SUBMIT,
    "GET /api/v1/jobs/{job_id}/why": READ,
    "GET /api/v1/jobs/{job_id}/wait": READ,
    "POST /api/v1/jobs/{job_id}/pause": SUBMIT,
    "POST /api/v1/jobs/{job_id}/resume": SUBMIT,
    "POST /api/v1/jobs/{job_id}/cancel": SUBMIT,
    "POST /api/v1/jobs/{job_id}/retry": SUBMIT,
    "PUT /api/v1/jobs/{job_id}/priority": SUBMIT,
    "GET /api/v1/jobs/{job_id}/tasks": READ,
    "GET /api/v1/jobs/{job_id}/attempts": READ,
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}": READ,
    "POST /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/retry": SUBMIT,
    "POST /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/skip": SUBMIT,
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/log": READ,
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/why": READ,
    "GET /api/v1/jobs/{job_id}/error-hosts": READ,
    "DELETE /api/v1/jobs/{job_id}/error-hosts": SUBMIT,
    "POST /api/v1/templates/jobs": SUBMIT,
    "POST /api/v1/templates/check": SUBMIT,
    # workers
    "GET /api/v1/workers": READ,
    "GET /api/v1/workers/{name}": READ,
    "POST /api/v1/workers/{name}/enable": WRANGLE,
    "POST /api/v1/workers/{name}/disable": WRANGLE,
    "PUT /api/v1/workers/{name}/lanes/{lane}": WRANGLE,
    "DELETE /api/v1/workers/{name}/lanes/{lane}": WRANGLE,
    "PUT /api/v1/workers/{name}/pools": WRANGLE,
    "DELETE /api/v1/workers/{name}/pools": WRANGLE,
    "POST /api/v1/workers/{name}/pause": WRANGLE,
    "POST /api/v1/workers/{name}/stop": WRANGLE,
    "POST /api/v1/workers/{name}/resume": WRANGLE,
    "DELETE /api/v1/workers/{name}/sick": WRANGLE,
    "POST /api/v1/enrol-codes": WRANGLE,
    "GET /api/v1/enrol-codes": WRANGLE,
    "DELETE /api/v1/enrol-codes/{code_id}": WRANGLE,
    # the workers' own routes
    "POST /api/v1/agent/register": ENROLMENT,
    "POST /api/v1/agent/enrol": frozenset(),  # a one-time code is the credential: no token
    "POST /api/v1/agent/goodbye": WORKERS,
    "POST /api/v1/agent/poll": WORKERS,
    "POST /api/v1/agent/report": WORKERS,
    "POST /api/v1/agent/sample": WORKERS,  # an idle worker's resource sample (web monitor)
    "GET /api/v1/agent/engines/{name}/{revision}": frozenset({WORKER, ADMIN}),
    # engines
    "GET /api/v1/engines": READ,
    "GET /api/v1/engines/{name}": READ,
    "GET /api/v1/engines/{name}/revisions/{revision}": READ,
    "POST /api/v1/engines/{name}/revisions": ADMINS,
    "POST /api/v1/engines/{name}/enable": ADMINS,
    "POST /api/v1/engines/{name}/disable": ADMINS,
    "POST /api/v1/engines/{name}/rollback": ADMINS,
    # scheduling
    "GET /api/v1/limits": READ,
    "GET /api/v1/limits/{name}": READ,
    "PUT /api/v1/limits/{name}": WRANGLE,
    "DELETE /api/v1/limits/{name}": WRANGLE,
    "GET /api/v1/users": READ,
    "PUT /api/v1/users/{name}": WRANGLE,
    "GET /api/v1/pools": READ,
    # sites, volumes, a job's sync per site (docs/sites.md)
    "GET /api/v1/sites": READ,
    "GET /api/v1/sites/{name}": READ,
    "PUT /api/v1/sites/{name}": WRANGLE,
    "DELETE /api/v1/sites/{name}": WRANGLE,
    "GET /api/v1/volumes": READ | WORKERS,  # workers resolve share paths with them
    "GET /api/v1/volumes/{name}": READ,
    "PUT /api/v1/volumes/{name}": WRANGLE,
    "DELETE /api/v1/volumes/{name}": WRANGLE,
    "GET /api/v1/jobs/{job_id}/sites": READ,
    "PUT /api/v1/jobs/{job_id}/sites/{site}": SUBMIT,
    "GET /api/v1/files/access": SUBMIT,  # the main site's file service, for --upload-deps
    "GET /api/v1/agent/sites": frozenset({WORKER, ADMIN}),
    "POST /api/v1/agent/sync/{job_id}/{site}": frozenset({WORKER, ADMIN}),
    "PUT /api/v1/agent/sync/{job_id}/{site}": frozenset({WORKER, ADMIN}),
    # people, tokens, access keys, audit
    "GET /api/v1/accounts": WRANGLE,
    "GET /api/v1/accounts/me": PEOPLE,
    "PUT /api/v1/accounts/{name}": ADMINS,
    "DELETE /api/v1/accounts/{name}": ADMINS,
    "POST /api/v1/tokens": PEOPLE,
    "GET /api/v1/tokens": PEOPLE,
    "DELETE /api/v1/tokens/{token_id}": PEOPLE,
    "POST /api/v1/admin/tokens": ADMINS,
    "POST /api/v1/admin/access-keys": ADMINS,
    "GET /api/v1/audit": WRANGLE,
    # operations: Prometheus scrapes with a wrangler's (or an admin's) token
    "GET /metrics": WRANGLE,
    # the web monitor (a job's task runs and ETA follow the job's visibility)
    "GET /api/v1/jobs/{job_id}/blocks/{block}/runs": READ,
    "POST /api/v1/jobs/{job_id}/blocks/{block}/range": SUBMIT,
    "GET /api/v1/jobs/{job_id}/eta": READ,
    "GET /api/v1/workers/{name}/samples": READ,
    "GET /api/v1/samples/latest": READ,
    "GET /api/v1/lanes": READ,
    "GET /api/v1/stats": READ,
    "GET /api/v1/stuck": WRANGLE,
    "POST /api/v1/events/ticket": READ,
    "GET /api/v1/events/stream": READ,
    # events and subscriptions (webhooks, e-mail): the use cases check whose they are
    "POST /api/v1/subscriptions": READ,
    "GET /api/v1/subscriptions": READ,
    "GET /api/v1/subscriptions/{sub_id}": READ,
    "DELETE /api/v1/subscriptions/{sub_id}": READ,
    "GET /api/v1/events": READ,
    # submitters' compatible routes
    "POST /renderacre/v1/jobs": SUBMIT,
    "POST /renderacre/{token}/v1/jobs": SUBMIT,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/environments": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/environments/{environmentId}": READ,
    "POST /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs": SUBMIT,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}": READ,
    "GET /deadline/2023-10-12/farms": READ,
    "GET /deadline/2023-10-12/farms/{farmId}": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/fleets": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/fleets/{fleetId}": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queue-fleet-associations": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/storage-profiles": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/storage-profiles/{storageProfileId}": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/storage-profiles": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}"
    "/storage-profiles/{storageProfileId}": READ,
    "POST /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/environments": ADMINS,
    "DELETE " + _QUEUE + "/environments/{environmentId}": ADMINS,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs": READ,
    "POST /deadline/2023-10-12/farms/{farmId}/search/jobs": READ,
    "PATCH /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}": SUBMIT,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}": READ,
    "GET " + _JOB + "/steps/{stepId}/tasks": READ,
    "GET " + _JOB + "/steps/{stepId}/tasks/{taskId}": READ,
    "PATCH " + _JOB + "/steps/{stepId}/tasks/{taskId}": SUBMIT,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/sessions": READ,
    "GET " + _JOB + "/sessions/{sessionId}": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/session-actions": READ,
    "GET " + _JOB + "/session-actions/{sessionActionId}": READ,
    "POST /deadline/2023-10-12/farms/{farmId}/sessions-statistics-aggregation": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/sessions-statistics-aggregation": READ,
    "POST /deadline-logs/": READ,
    "POST /deadline-logs": READ,
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/user-roles": READ,
    # job attachments (queue credentials only): jobs' outputs, as visibility allows
    "GET /deadline-s3/{bucket}": READ,
    "GET /deadline-s3/{bucket}/{key}": READ,
    "HEAD /deadline-s3/{bucket}/{key}": READ,
    "PUT /deadline-s3/{bucket}/{key}": SUBMIT,
    "POST /deadline-s3/{bucket}/{key}": SUBMIT,  # multipart upload (checked, dropped)
    "DELETE /deadline-s3/{bucket}/{key}": SUBMIT,  # its abort
    "POST /deadline-s3/{path}": READ,  # refused naming the operation
    "DELETE /deadline-s3/{path}": READ,  # refused naming the operation
    "PATCH /deadline-s3/{path}": READ,  # refused naming the operation
    "GET /deadline/{path}": READ,  # refused naming the operation
    "POST /deadline/{path}": READ,  # refused naming the operation
    "PUT /deadline/{path}": READ,  # refused naming the operation
    "PATCH /deadline/{path}": READ,  # refused naming the operation
    "DELETE /deadline/{path}": READ,  # refused naming the operation
    # the submitters' own routes
    "GET /api/v1/find": READ,
    "PATCH /api/v1/jobs/{job_id}": SUBMIT,
    "POST /api/v1/jobs/task-file": SUBMIT,
    "GET /api/v1/admin/queue-environments": READ,
    "POST /api/v1/admin/queue-environments": ADMINS,
    "DELETE /api/v1/admin/queue-environments/{env_id}": ADMINS,
}

#: Routes anyone may call without a token.
OPEN = frozenset({"GET /healthz", "POST /api/v1/agent/enrol"})


def route_key(method: str, path: str) -> str:
    """`METHOD /path/{param}`, a converter left out (`{key:path}` is `{key}`, as in the
    OpenAPI document)."""
    return method.upper() + " " + _CONVERTER.sub(r"{\1}", path)


def check(
    caller: Caller, method: str, path: str, routes: Mapping[str, frozenset[str]] = ROUTES
) -> None:
    """Forbidden unless the caller's role may call this route (no entry: nobody may)."""
    key = route_key(method, path)
    allowed = routes.get(key)
    if allowed is None:
        raise Forbidden(f"{key} has no entry in the access policy: refused to everyone")
    if caller.role not in allowed:
        roles = " or ".join(sorted(allowed)) or "none"
        raise Forbidden(f"{key} needs a token with role {roles}, not {caller.role}")
