"""The permission matrix: every route of the served OpenAPI document by every identity (admin,
wrangler, artist, viewer, worker, enrolment, none, expired, revoked) by own and someone else's
object, against the policy EXPECTED writes down here, one entry per route.

A route in the OpenAPI document without an entry here fails the test (and one in the server's
policy, controller/policy.py, too): a new route cannot be left out. An unexpected allow and an
unexpected refusal both fail it. "Refused" is 401 or 403, and for a route on an object (a job,
a token) also 404: an object the caller may not see answers as if it did not exist. Anything
else (2xx, 409, 422, 404 of a thing that is not there) got past the checks.

Adding a route: add its entry to EXPECTED (who may call it; for a route on a job or a token,
who may act on someone else's) and, if it needs them, its path values in `_params` and its
body in BODIES. docs/security.md, "Adding a route"."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.controller.security_farm import (
    IDENTITIES,
    NAMES,
    SecurityFarm,
    register_body,
    security_farm,
)

from thresher.controller import policy
from thresher.controller.routes.deadline.storage import profile_id

READ = frozenset({"admin", "wrangler", "artist", "viewer"})
SUBMIT = frozenset({"admin", "wrangler", "artist"})
WRANGLE = frozenset({"admin", "wrangler"})
ADMIN = frozenset({"admin"})
WORKER = frozenset({"worker"})
EVERYONE = frozenset(IDENTITIES)
ANY_JOB = WRANGLE  # who acts on, and sees, someone else's job


@dataclass(frozen=True)
class Rule:
    """Who may call a route. For a route on an object (`on`: job, token), `roles` may call it
    on their own object and `others` on someone else's."""

    roles: frozenset[str]
    on: str | None = None
    others: frozenset[str] = frozenset()


def job(roles: frozenset[str]) -> Rule:
    return Rule(roles, on="job", others=ANY_JOB & roles)


DEADLINE = "/deadline/2023-10-12/farms/{farmId}/queues/{queueId}"
EMPTY_XXH128 = "99aa06d3014798d86001c324468d497f"
EXPECTED: dict[str, Rule] = {
    "GET /healthz": Rule(EVERYONE),
    # jobs and tasks: artists their own, viewers what their groups share, wranglers any
    "POST /api/v1/jobs": Rule(SUBMIT),
    "GET /api/v1/jobs": Rule(READ),
    "GET /api/v1/jobs/{job_id}": job(READ),
    "DELETE /api/v1/jobs/{job_id}": job(SUBMIT),
    "GET /api/v1/jobs/{job_id}/why": job(READ),
    "GET /api/v1/jobs/{job_id}/wait": job(READ),
    "POST /api/v1/jobs/{job_id}/pause": job(SUBMIT),
    "POST /api/v1/jobs/{job_id}/resume": job(SUBMIT),
    "POST /api/v1/jobs/{job_id}/cancel": job(SUBMIT),
    "POST /api/v1/jobs/{job_id}/retry": job(SUBMIT),
    "PUT /api/v1/jobs/{job_id}/priority": job(SUBMIT),
    "GET /api/v1/jobs/{job_id}/tasks": job(READ),
    "GET /api/v1/jobs/{job_id}/attempts": job(READ),
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}": job(READ),
    "POST /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/retry": job(SUBMIT),
    "POST /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/skip": job(SUBMIT),
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/log": job(READ),
    "GET /api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/why": job(READ),
    "GET /api/v1/jobs/{job_id}/error-hosts": job(READ),
    "DELETE /api/v1/jobs/{job_id}/error-hosts": job(SUBMIT),
    "POST /api/v1/templates/jobs": Rule(SUBMIT),
    "POST /api/v1/templates/check": Rule(SUBMIT),
    # workers
    "GET /api/v1/workers": Rule(READ),
    "GET /api/v1/workers/{name}": Rule(READ),
    "POST /api/v1/workers/{name}/enable": Rule(WRANGLE),
    "POST /api/v1/workers/{name}/disable": Rule(WRANGLE),
    "PUT /api/v1/workers/{name}/lanes/{lane}": Rule(WRANGLE),
    "DELETE /api/v1/workers/{name}/lanes/{lane}": Rule(WRANGLE),
    "PUT /api/v1/workers/{name}/pools": Rule(WRANGLE),
    "DELETE /api/v1/workers/{name}/pools": Rule(WRANGLE),
    "POST /api/v1/workers/{name}/pause": Rule(WRANGLE),
    "POST /api/v1/workers/{name}/stop": Rule(WRANGLE),
    "POST /api/v1/workers/{name}/resume": Rule(WRANGLE),
    "DELETE /api/v1/workers/{name}/sick": Rule(WRANGLE),
    "POST /api/v1/enrol-codes": Rule(WRANGLE),
    "GET /api/v1/enrol-codes": Rule(WRANGLE),
    "DELETE /api/v1/enrol-codes/{code_id}": Rule(WRANGLE),
    # the workers' own routes; enrolling by code needs no token (the code is the credential)
    "POST /api/v1/agent/register": Rule(frozenset({"enrolment", "worker", "admin"})),
    "POST /api/v1/agent/enrol": Rule(EVERYONE),
    "POST /api/v1/agent/goodbye": Rule(WORKER),
    "POST /api/v1/agent/poll": Rule(WORKER),
    "POST /api/v1/agent/report": Rule(WORKER),
    "POST /api/v1/agent/sample": Rule(WORKER),
    "GET /api/v1/agent/engines/{name}/{revision}": Rule(frozenset({"worker", "admin"})),
    # engines: reading for people, changing for admins
    "GET /api/v1/engines": Rule(READ),
    "GET /api/v1/engines/{name}": Rule(READ),
    "GET /api/v1/engines/{name}/revisions/{revision}": Rule(READ),
    "POST /api/v1/engines/{name}/revisions": Rule(ADMIN),
    "POST /api/v1/engines/{name}/enable": Rule(ADMIN),
    "POST /api/v1/engines/{name}/disable": Rule(ADMIN),
    "POST /api/v1/engines/{name}/rollback": Rule(ADMIN),
    # scheduling settings
    "GET /api/v1/limits": Rule(READ),
    "GET /api/v1/limits/{name}": Rule(READ),
    "PUT /api/v1/limits/{name}": Rule(WRANGLE),
    "DELETE /api/v1/limits/{name}": Rule(WRANGLE),
    "GET /api/v1/users": Rule(READ),
    "PUT /api/v1/users/{name}": Rule(WRANGLE),
    "GET /api/v1/pools": Rule(READ),
    # sites, volumes, a job's sync per site
    "GET /api/v1/sites": Rule(READ),
    "GET /api/v1/sites/{name}": Rule(READ),
    "PUT /api/v1/sites/{name}": Rule(WRANGLE),
    "DELETE /api/v1/sites/{name}": Rule(WRANGLE),
    "GET /api/v1/volumes": Rule(READ | WORKER),
    "GET /api/v1/volumes/{name}": Rule(READ),
    "PUT /api/v1/volumes/{name}": Rule(WRANGLE),
    "DELETE /api/v1/volumes/{name}": Rule(WRANGLE),
    "GET /api/v1/jobs/{job_id}/sites": job(READ),
    "PUT /api/v1/jobs/{job_id}/sites/{site}": job(SUBMIT),
    "GET /api/v1/files/access": Rule(SUBMIT),
    "GET /api/v1/agent/sites": Rule(frozenset({"worker", "admin"})),
    "POST /api/v1/agent/sync/{job_id}/{site}": Rule(frozenset({"worker", "admin"})),
    "PUT /api/v1/agent/sync/{job_id}/{site}": Rule(frozenset({"worker", "admin"})),
    # people, tokens, access keys, audit
    "GET /api/v1/accounts": Rule(WRANGLE),
    "GET /api/v1/accounts/me": Rule(READ),
    "PUT /api/v1/accounts/{name}": Rule(ADMIN),
    "DELETE /api/v1/accounts/{name}": Rule(ADMIN),
    "POST /api/v1/tokens": Rule(READ),
    "GET /api/v1/tokens": Rule(READ),
    "DELETE /api/v1/tokens/{token_id}": Rule(READ, on="token", others=ADMIN),
    "POST /api/v1/admin/tokens": Rule(ADMIN),
    "POST /api/v1/admin/access-keys": Rule(ADMIN),
    "GET /api/v1/audit": Rule(WRANGLE),
    "GET /metrics": Rule(WRANGLE),
    # the web monitor
    "GET /api/v1/jobs/{job_id}/blocks/{block}/runs": job(READ),
    "POST /api/v1/jobs/{job_id}/blocks/{block}/range": job(SUBMIT),
    "GET /api/v1/jobs/{job_id}/eta": job(READ),
    "GET /api/v1/workers/{name}/samples": Rule(READ),
    "GET /api/v1/samples/latest": Rule(READ),
    "GET /api/v1/lanes": Rule(READ),
    "GET /api/v1/stats": Rule(READ),
    "GET /api/v1/stuck": Rule(WRANGLE),
    "POST /api/v1/events/ticket": Rule(READ),
    # events and subscriptions: people; whose subscription it is, the use case checks (a
    # subscription that is not there answers 404 to everyone who may call the route)
    "POST /api/v1/subscriptions": Rule(READ),
    "GET /api/v1/subscriptions": Rule(READ),
    "GET /api/v1/subscriptions/{sub_id}": Rule(READ),
    "DELETE /api/v1/subscriptions/{sub_id}": Rule(READ),
    "GET /api/v1/events": Rule(READ),
    # submitters' compatible routes (renderacre: Basic auth or the old token-in-path; Deadline
    # Cloud: SigV4 with each person's access key, the others with bearer tokens)
    "POST /renderacre/v1/jobs": Rule(SUBMIT),
    "POST /renderacre/{token}/v1/jobs": Rule(SUBMIT),
    f"GET {DEADLINE}": Rule(READ),
    f"GET {DEADLINE}/environments": Rule(READ),
    f"GET {DEADLINE}/environments/{{environmentId}}": Rule(READ),
    f"POST {DEADLINE}/jobs": Rule(SUBMIT),
    f"GET {DEADLINE}/jobs/{{jobId}}": job(READ),
    # job attachments: queue credentials (AssumeQueueRoleForUser) act as their person, on the
    # attachments endpoint only; which job's files they read, visibility decides
    f"GET {DEADLINE}/user-roles": Rule(READ),
    "GET /deadline-s3/{bucket}": Rule(READ),
    "GET /deadline-s3/{bucket}/{key}": Rule(READ),
    "PUT /deadline-s3/{bucket}/{key}": Rule(SUBMIT),
    "POST /deadline-s3/{bucket}/{key}": Rule(SUBMIT),
    "DELETE /deadline-s3/{bucket}/{key}": Rule(SUBMIT),
    # the rest of Deadline Cloud's API (docs/deadline.md); a session is an attempt, which a
    # job of the matrix does not have: those routes answer 404 past the checks
    "GET /deadline/2023-10-12/farms": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/queues": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/fleets": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/fleets/{fleetId}": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/queue-fleet-associations": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/storage-profiles": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/storage-profiles/{storageProfileId}": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}/storage-profiles": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/queues/{queueId}"
    "/storage-profiles/{storageProfileId}": Rule(READ),
    "POST /deadline/2023-10-12/farms/{farmId}/search/jobs": Rule(READ),
    "POST /deadline/2023-10-12/farms/{farmId}/sessions-statistics-aggregation": Rule(READ),
    "GET /deadline/2023-10-12/farms/{farmId}/sessions-statistics-aggregation": Rule(READ),
    "POST /deadline-logs": Rule(READ),
    "POST /deadline-logs/": Rule(READ),
    f"POST {DEADLINE}/environments": Rule(ADMIN),
    f"DELETE {DEADLINE}/environments/{{environmentId}}": Rule(ADMIN),
    f"GET {DEADLINE}/jobs": Rule(READ),
    f"PATCH {DEADLINE}/jobs/{{jobId}}": job(SUBMIT),
    f"GET {DEADLINE}/jobs/{{jobId}}/steps": job(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/steps/{{stepId}}": job(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/steps/{{stepId}}/tasks": job(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/steps/{{stepId}}/tasks/{{taskId}}": job(READ),
    f"PATCH {DEADLINE}/jobs/{{jobId}}/steps/{{stepId}}/tasks/{{taskId}}": job(SUBMIT),
    f"GET {DEADLINE}/jobs/{{jobId}}/sessions": job(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/sessions/{{sessionId}}": Rule(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/session-actions": job(READ),
    f"GET {DEADLINE}/jobs/{{jobId}}/session-actions/{{sessionActionId}}": Rule(READ),
    # the submitters' own routes: find, a job changed on the fly, task-file jobs
    "GET /api/v1/find": Rule(READ),
    "PATCH /api/v1/jobs/{job_id}": job(SUBMIT),
    "POST /api/v1/jobs/task-file": Rule(SUBMIT),
    "GET /api/v1/admin/queue-environments": Rule(READ),
    "POST /api/v1/admin/queue-environments": Rule(ADMIN),
    "DELETE /api/v1/admin/queue-environments/{env_id}": Rule(ADMIN),
}
QUEUE_ENV = (
    "specificationVersion: environment-2023-09\n"
    "environment: {name: MatrixEnv, variables: {A: '1'}}\n"
)

#: Bodies that pass validation, so that an allowed call reaches the checks on its object.
BODIES: dict[str, Any] = {
    "POST /api/v1/jobs": {"name": "m", "command": ["true"], "paused": True},
    "PUT /api/v1/jobs/{job_id}/priority": {"priority": 10},
    "PUT /api/v1/workers/{name}/lanes/{lane}": {"engines": ["command"]},
    "PUT /api/v1/workers/{name}/pools": {"pools": ["gpu"]},
    "POST /api/v1/enrol-codes": {},
    "POST /api/v1/agent/enrol": {**register_body("by-code"), "code": "NOPE-NOPE"},
    "POST /api/v1/agent/poll": {"wait_s": 0},
    "POST /api/v1/agent/report": {},
    "POST /api/v1/agent/sample": {"sample": {"cpu": 1.0}},
    "POST /api/v1/engines/{name}/revisions": {"source": "this is not python ("},
    "POST /api/v1/engines/{name}/rollback": {"revision": 0},
    "PUT /api/v1/limits/{name}": {"max_total": 2},
    "PUT /api/v1/users/{name}": {"priority": 10},
    "PUT /api/v1/sites/{name}": {"description": "matrix"},
    "PUT /api/v1/volumes/{name}": {"roots": {"hq": {"linux": "/mnt/matrix"}}},
    "PUT /api/v1/jobs/{job_id}/sites/{site}": {"download": False},
    "PUT /api/v1/agent/sync/{job_id}/{site}": {"state": "done"},
    "PUT /api/v1/accounts/{name}": {"role": "viewer", "groups": ["g"]},
    "POST /api/v1/tokens": {"label": "matrix"},
    "POST /api/v1/admin/tokens": {"name": "made", "role": "viewer"},
    "POST /api/v1/admin/access-keys": {"name": "made", "role": "viewer"},
    "POST /api/v1/jobs/{job_id}/blocks/{block}/range": {"first": 0, "last": 0, "action": "skip"},
    "POST /api/v1/subscriptions": {"channel": "email", "target": "td@studio.example"},
    "PATCH /api/v1/jobs/{job_id}": {"priority": 20},
    "POST /api/v1/jobs/task-file": {"name": "t", "tasks": [["true"]], "paused": True},
    "POST /api/v1/admin/queue-environments": {"name": "matrix", "template": QUEUE_ENV},
    f"POST {DEADLINE}/environments": {"priority": 1, "template": QUEUE_ENV},
    f"PATCH {DEADLINE}/jobs/{{jobId}}": {"priority": 20},
    f"PATCH {DEADLINE}/jobs/{{jobId}}/steps/{{stepId}}/tasks/{{taskId}}": {
        "targetRunStatus": "SUCCEEDED"
    },
    "POST /deadline/2023-10-12/farms/{farmId}/search/jobs": {"itemOffset": 0},
}
#: Calls that change the caller itself run last (the worker says goodbye, then re-enrols).
LAST = ("POST /api/v1/agent/goodbye", "POST /api/v1/agent/register")


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityFarm]:
    yield from security_farm(Path(tmp_path_factory.mktemp("permissions")))


def served_routes(farm: SecurityFarm) -> list[str]:
    spec = farm.http.get("/openapi.json").json()
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    )


def test_every_served_route_has_an_expected_policy_and_a_server_policy(
    farm: SecurityFarm,
) -> None:
    routes = set(served_routes(farm))
    assert routes - set(EXPECTED) == set(), "routes without an entry in EXPECTED"
    assert set(EXPECTED) - routes == set(), "entries in EXPECTED for routes not served"
    assert routes - set(policy.ROUTES) - policy.OPEN == set(), "no entry in controller/policy"


def test_no_route_allows_or_refuses_anyone_unexpectedly(farm: SecurityFarm) -> None:
    own_jobs = {
        identity: _job_of(farm, identity) for identity in IDENTITIES
    }  # a job each may call "its own" (a viewer: its group's)
    others = farm.submit_as("bob")
    routes = sorted(
        served_routes(farm), key=lambda r: (r in LAST, LAST.index(r) if r in LAST else 0)
    )
    wrong = []
    for route in routes:
        rule = EXPECTED[route]
        for identity in IDENTITIES:
            for own in (True, False) if rule.on else (True,):
                expected = identity in (rule.roles if own else rule.others)
                status = _call(farm, route, identity, own=own, own_jobs=own_jobs, other=others)
                refused = status in (401, 403) or (rule.on is not None and status == 404)
                if refused == expected:
                    whose = "" if rule.on is None else (" own" if own else " other's")
                    wrong.append(f"{route} as {identity}{whose}: {status}")
    assert wrong == [], "\n".join(wrong)


def _job_of(farm: SecurityFarm, identity: str) -> int:
    if identity in ("admin", "wrangler", "artist"):
        return farm.submit_as(NAMES[identity])
    return farm.submit_as("alice")  # a viewer in alice's group sees it; the others see nothing


def _call(
    farm: SecurityFarm,
    route: str,
    identity: str,
    *,
    own: bool,
    own_jobs: dict[str, int],
    other: int,
) -> int:
    method, template = route.split(" ", 1)
    job_id = own_jobs[identity] if own else other
    owner = NAMES.get(identity, "alice") if identity != "viewer" else "alice"
    if route == "DELETE /api/v1/jobs/{job_id}":  # a fresh job: deleting must not spoil others
        job_id = farm.submit_as(owner if own else "bob")
    elif route.endswith("/jobs/{jobId}"):  # Deadline Cloud shows OpenJD jobs only
        job_id = farm.submit_template_as(owner if own else "bob")
    path = template.format(**_params(farm, route, identity, own=own, job_id=job_id))
    if route == "GET /api/v1/jobs/{job_id}/wait":
        path += "?timeout_s=0"  # the job as it is: no wait for its end
    body = BODIES.get(route)
    if template.startswith("/deadline") and identity in farm.access_keys:
        raw = b"" if body is None else __import__("json").dumps(body).encode()
        queue_key = farm.queue_key(identity) if template.startswith("/deadline-s3") else None
        headers = farm.signed_headers(identity, method, path, raw, queue_key=queue_key)
        return farm.http.request(method, path, content=raw, headers=headers).status_code
    headers = farm.basic(identity) if route == "POST /renderacre/v1/jobs" else farm.bearer(identity)
    if route == "POST /renderacre/{token}/v1/jobs":
        headers = {}
    answer = farm.http.request(method, path, json=body, headers=headers)
    return answer.status_code


def _params(
    farm: SecurityFarm, route: str, identity: str, *, own: bool, job_id: int
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "job_id": job_id,
        "block": 0,
        "index": 0,
        "lane": 0,
        "revision": 0,
        "farmId": "farm-1",
        "queueId": "queue-1",
        "environmentId": "env-1",
        "jobId": f"job-{job_id:032x}",
        "stepId": f"step-{job_id:024x}{0:08x}",
        "taskId": f"task-{job_id:024x}{0:08x}-0",
        "sessionId": f"session-{job_id:032x}",
        "sessionActionId": f"sessionaction-{job_id:032x}-0",
        "fleetId": "fleet-" + "0" * 31 + "1",
        "storageProfileId": profile_id("hq", "LINUX"),  # the main site's, always there
        "env_id": 1_000_000,
        "token": farm.tokens[identity] or "none",
        "sub_id": 999_999,  # none: the route's policy is what is checked here
        "bucket": "thresher",
        "key": f"attachments/Data/{EMPTY_XXH128}.xxh128",  # an empty body's: PutObject takes it
    }
    if "/workers/" in route:
        values["name"] = "w1"
    elif "/engines/" in route:
        values["name"] = "command"
    elif "/limits/" in route:
        values["name"] = "matrix-license"
    elif "/users/" in route:
        values["name"] = "alice"
    elif "/accounts/" in route:
        values["name"] = farm.unique("someone")
        if route.startswith("DELETE"):
            farm.admin.put_account(values["name"], role="artist")
    if "/sites/{name}" in route:
        values["name"] = "matrix-site"
    elif "/volumes/{name}" in route:
        values["name"] = "matrix-volume"
    values["site"] = "sthlm"
    if "{token_id}" in route:  # a fresh token, the caller's own or bob's
        owner = NAMES.get(identity, "alice") if own else "bob"
        values["token_id"] = farm.admin.create_token(owner, "viewer").id
    if "{code_id}" in route:
        values["code_id"] = farm.admin.create_enrol_code().id
    if route == "POST /api/v1/agent/register":
        BODIES[route] = register_body("w1" if identity == "worker" else farm.unique("reg"))
    return values


def test_a_token_in_use_is_refused_by_every_route_from_the_request_after_its_revocation(
    farm: SecurityFarm,
) -> None:
    """For each route, a fresh token is used (so the controller knows it), revoked, and sent
    to the route: no route may let it through on what the controller remembered."""
    job_id = farm.submit_as("alice")
    let_through = []
    for route in served_routes(farm):
        method, template = route.split(" ", 1)
        if route in policy.OPEN or template.startswith("/deadline") or "{token}" in template:
            continue  # no bearer token there: open, SigV4, or the token in the path
        made = farm.admin.create_token("root2", "admin")
        headers = {"authorization": f"Bearer {made.token}"}
        assert farm.http.get("/api/v1/accounts/me", headers=headers).status_code == 200
        farm.admin.revoke_token(made.id)
        path = template.format(**_params(farm, route, "admin", own=True, job_id=job_id))
        answer = farm.http.request(method, path, json=BODIES.get(route), headers=headers)
        if answer.status_code != 401:
            let_through.append(f"{route}: {answer.status_code}")
    assert let_through == []
