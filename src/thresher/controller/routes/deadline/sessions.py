"""Sessions: each attempt of a task is a session of one session action (its task run), so
ListSessions, GetSession, ListSessionActions and GetSessionAction show a job's attempts, and
CloudWatch Logs' GetLogEvents (`AWS_ENDPOINT_URL_LOGS=<controller>/deadline-logs`) reads an
attempt's output, as `deadline job logs` does. Thresher keeps no time per output line: each
line carries its attempt's start time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    FLEET_ID,
    DeadlineError,
    SignedCaller,
    action_id_in,
    action_id_out,
    compact,
    iso,
    job_id_in,
    json_body,
    next_token,
    not_found,
    page_of,
    session_id_in,
    session_id_out,
    step_id_out,
    task_id_out,
    validation,
    worker_id_out,
)
from thresher.controller.routes.deadline.jobs import one_job
from thresher.controller.routes.deps import FarmDep
from thresher.core.errors import NotFound
from thresher.core.model import AttemptRecord
from thresher.core.states import AttemptStatus

router = APIRouter(
    prefix=API + "/farms/{farmId}/queues/{queueId}/jobs/{jobId}",
    tags=["deadline"],
    responses=AWS_ERRORS,
)
logs_router = APIRouter(prefix="/deadline-logs", tags=["deadline"], responses=AWS_ERRORS)
MAX_LOG_EVENTS = 10_000

_ACTION_STATUS = {
    AttemptStatus.RUNNING: "RUNNING",
    AttemptStatus.SUCCEEDED: "SUCCEEDED",
    AttemptStatus.FAILED: "FAILED",
    AttemptStatus.TIMED_OUT: "FAILED",
    AttemptStatus.CANCELED: "CANCELED",
    AttemptStatus.LOST: "INTERRUPTED",
    AttemptStatus.PREEMPTED: "INTERRUPTED",
}


def _log_config(farm_id: str, queue_id: str, attempt_id: int) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "logGroupName": f"/aws/deadline/{farm_id}/{queue_id}",
            "logStreamName": session_id_out(attempt_id),
        },
    }


def session_out(attempt: AttemptRecord) -> dict[str, Any]:
    return compact(
        {
            "sessionId": session_id_out(attempt.id),
            "fleetId": FLEET_ID,
            "workerId": worker_id_out(attempt.worker_id),
            "startedAt": iso(attempt.created_at),
            "lifecycleStatus": "STARTED" if attempt.ended_at is None else "ENDED",
            "endedAt": iso(attempt.ended_at),
        }
    )


def action_out(attempt: AttemptRecord) -> dict[str, Any]:
    return compact(
        {
            "sessionActionId": action_id_out(attempt.id),
            "sessionId": session_id_out(attempt.id),
            "status": _ACTION_STATUS.get(attempt.status, "RUNNING"),
            "startedAt": iso(attempt.created_at),
            "endedAt": iso(attempt.ended_at),
            "progressPercent": None if attempt.progress is None else float(attempt.progress),
            "processExitCode": attempt.exit_code,
            "progressMessage": attempt.status_message or attempt.message,
            "definition": {
                "taskRun": {
                    "taskId": task_id_out(attempt.job_id, attempt.block_index, attempt.task_index),
                    "stepId": step_id_out(attempt.job_id, attempt.block_index),
                    "parameters": {},
                }
            },
        }
    )


async def _attempts(
    farm: Any, caller: Any, job_ref: str, token: str | None, size: int | None
) -> Any:
    job = await one_job(farm, caller, job_ref)
    offset, limit = page_of(token, size)
    found = await farm.call(
        farm.submitters.job_attempts, caller, job.id, offset=offset, limit=limit
    )
    return found, next_token(offset, limit, len(found))


async def _attempt(
    farm: Any, caller: Any, job_ref: str, attempt_id: int, ref: str
) -> AttemptRecord:
    try:
        found: AttemptRecord = await farm.call(
            farm.submitters.attempt, caller, job_id_in(job_ref), attempt_id
        )
    except NotFound:
        raise not_found("session", ref) from None
    return found


@router.get("/sessions")
async def list_sessions(
    farmId: str,
    queueId: str,
    jobId: str,
    farm: FarmDep,
    caller: SignedCaller,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    found, token = await _attempts(farm, caller, jobId, nextToken, maxResults)
    return compact({"sessions": [session_out(a) for a in found], "nextToken": token})


@router.get("/sessions/{sessionId}")
async def get_session(
    farmId: str, queueId: str, jobId: str, sessionId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    attempt = await _attempt(farm, caller, jobId, session_id_in(sessionId), sessionId)
    return dict(session_out(attempt), log=_log_config(farmId, queueId, attempt.id))


@router.get("/session-actions")
async def list_session_actions(
    farmId: str,
    queueId: str,
    jobId: str,
    farm: FarmDep,
    caller: SignedCaller,
    sessionId: str | None = None,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    if sessionId is not None:
        attempt = await _attempt(farm, caller, jobId, session_id_in(sessionId), sessionId)
        return {"sessionActions": [action_out(attempt)]}
    found, token = await _attempts(farm, caller, jobId, nextToken, maxResults)
    return compact({"sessionActions": [action_out(a) for a in found], "nextToken": token})


@router.get("/session-actions/{sessionActionId}")
async def get_session_action(
    farmId: str, queueId: str, jobId: str, sessionActionId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    attempt_id = action_id_in(sessionActionId)
    return action_out(await _attempt(farm, caller, jobId, attempt_id, sessionActionId))


# -- CloudWatch Logs: GetLogEvents -------------------------------------------------------------


def _log_request(body: dict[str, Any]) -> tuple[int, int | None, int]:
    """(attempt id, the line id to read before, how many) of a GetLogEvents request."""
    stream = body.get("logStreamName")
    if not isinstance(stream, str):
        raise validation("GetLogEvents needs logStreamName (a session id)", "logStreamName")
    limit = body.get("limit", MAX_LOG_EVENTS)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LOG_EVENTS:
        raise validation(f"limit must be 1 to {MAX_LOG_EVENTS}", "limit")
    token = body.get("nextToken")
    before = None
    if isinstance(token, str) and token.startswith("f/") and token[2:].isdigit():
        before = int(token[2:])
    elif token is not None:
        raise validation("nextToken was not given by this farm", "nextToken")
    try:
        return session_id_in(stream), before, limit
    except DeadlineError:
        raise DeadlineError(
            400, "ResourceNotFoundException", f"the log stream {stream} does not exist"
        ) from None


@logs_router.post("/")
@logs_router.post("")
async def cloudwatch_logs(request: Request, farm: FarmDep, caller: SignedCaller) -> Any:
    target = request.headers.get("x-amz-target", "")
    if target != "Logs_20140328.GetLogEvents":
        operation = target.rpartition(".")[2] or "(none named)"
        raise DeadlineError(
            400,
            "UnknownOperationException",
            f"Thresher answers CloudWatch Logs' GetLogEvents only, not {operation}",
        )
    attempt_id, before, limit = _log_request(await json_body(request))
    try:
        attempt = await farm.call(farm.submitters.attempt_by_id, caller, attempt_id)
    except NotFound:
        raise DeadlineError(
            400, "ResourceNotFoundException", "the log stream does not exist"
        ) from None
    lines = await farm.call(
        farm.submitters.attempt_log, caller, attempt_id, before_id=before, limit=limit + 1
    )
    older = len(lines) > limit
    lines = lines[-limit:] if older else lines
    at = int(attempt.created_at * 1000)
    events = [{"timestamp": at, "message": text, "ingestionTime": at} for _, _, text in lines]
    out: dict[str, Any] = {"events": events, "nextBackwardToken": "b/0"}
    if older and lines:
        out["nextForwardToken"] = f"f/{lines[0][0]}"
    return out
