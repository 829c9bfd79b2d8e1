"""OpenJD tasks on a worker's lanes: one openjd-sessions session per job and lane.

A lane keeps the session of the job it last ran, so the job's (and environment templates')
environments are entered once and a step's environments once per run of that step's tasks. The
session is closed (its environments exited, last first) when the lane is about to run a task of
another job, when the lane has stayed idle for the agent's idle time, when a task fails or is
canceled (OpenJD ends such a session), and when the worker stops.

Everything a session logs goes to the log of the attempt it is working for: a task's banner and
output to that task's attempt, environment enters to the task that opened the session, and the
exits at the end to the last task the session ran (the controller keeps lines that arrive after
an attempt's finish). Process output lines are `stdout`; the session's own lines `system`.
`openjd_progress` and `openjd_status` become the attempt's progress and status message;
`openjd_fail` the finish message. A cancel is the session's own (the action's cancelation
method: terminate, or notify then terminate).

Path mapping rules are the job's (sent by its submitter) followed by the worker's own
(`thresher worker --path-mapping FILE`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thresher.schemas import api
from thresher.worker.outbox import Outbox
from thresher.worker.tasks import FinishStatus

# openjd-model takes a quarter of a second to import: every `thresher` command would pay it, so
# it is imported by the first OpenJD task.
if TYPE_CHECKING:
    from thresher.openjd import LogLine, OpenJDSessionRunner, PlanCache, TaskOutcome

_STATES: dict[str, FinishStatus] = {
    "success": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "timeout": "timed_out",
}


@dataclass(frozen=True)
class OpenJDResult:
    status: FinishStatus
    message: str | None
    exit_code: int | None
    duration_s: float


@dataclass
class _Attempt:
    attempt_id: int
    token: str
    stop: threading.Event
    recancel: bool = False  # a cancel that came before the task started was applied again


class _Session:
    """A lane's open session and the attempt its lines belong to now."""

    def __init__(self, key: str, job_id: int, attempt: _Attempt) -> None:
        self.key = key
        self.job_id = job_id
        self.attempt = attempt
        self.runner: OpenJDSessionRunner | None = None


class OpenJDLanes:
    """The OpenJD sessions of one worker, by lane. `run` and `close` block: call them from the
    lane's thread. `cancel` may be called from any thread."""

    def __init__(
        self,
        work_dir: Path,
        outbox: Outbox,
        *,
        path_mapping_rules: Sequence[Mapping[str, str]] = (),
        env: Mapping[str, str] | None = None,
        lane_env: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._lane_env = lane_env
        self._outbox = outbox
        self._rules = [dict(rule) for rule in path_mapping_rules]
        self._env = dict(env or {})
        self._sessions: dict[int, _Session] = {}
        self._lock = threading.Lock()
        self._plans: PlanCache | None = None

    def job_on(self, lane: int) -> int | None:
        """The job whose session is open on `lane`, if any."""
        with self._lock:
            session = self._sessions.get(lane)
        return session.job_id if session is not None else None

    def run(self, lane: int, a: api.AssignmentOut, stop: threading.Event) -> OpenJDResult:
        """Run the assignment's task in the lane's session (opened, or switched, as needed)."""
        started = time.monotonic()
        attempt = _Attempt(a.attempt_id, a.token, stop)
        from thresher.openjd import TaskOutcome

        try:
            stored = a.payload["openjd"]
            key = f"{a.job_id}:{_digest(stored)}"
            with self._lock:
                session = self._sessions.get(lane)
            if session is not None and session.key != key:
                self.close(lane)
                session = None
            if session is None:
                session = self._open(lane, key, a, stored, attempt)
            session.attempt = attempt
            runner = session.runner
            assert runner is not None
            step = runner.plan.step_from_json(a.payload["steps"][a.block])
            parameters = step.assigned_parameters(a.index, a.frames)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self._system(attempt, f"cannot run this OpenJD task: {exc}")
            return OpenJDResult("failed", f"cannot run this OpenJD task: {exc}", None, 0.0)
        if stop.is_set():
            return OpenJDResult("canceled", "canceled before it started", None, 0.0)
        try:
            outcome = runner.run_task(step.name, parameters)
        except ValueError as exc:
            outcome = TaskOutcome(False, "failed", None, str(exc))
        return _result(outcome, stop, time.monotonic() - started)

    def cancel(self, lane: int) -> None:
        with self._lock:
            session = self._sessions.get(lane)
        if session is not None and session.runner is not None:
            session.runner.cancel()

    def close(self, lane: int) -> None:
        """Exit the lane's session, if one is open; its lines go to its last attempt."""
        with self._lock:
            session = self._sessions.pop(lane, None)
        if session is not None and session.runner is not None and not session.runner.close():
            self._system(session.attempt, "an environment failed to exit cleanly")

    def close_all(self) -> None:
        with self._lock:
            lanes = list(self._sessions)
        for lane in lanes:
            self.close(lane)

    # -- inside ---------------------------------------------------------------------------------

    def _open(
        self, lane: int, key: str, a: api.AssignmentOut, stored: Any, attempt: _Attempt
    ) -> _Session:
        from thresher.openjd import LogSource, OpenJDSessionRunner, PlanCache

        session = _Session(key, a.job_id, attempt)
        if self._plans is None:
            self._plans = PlanCache()
        plan = self._plans.get(stored, key=key)
        rules = [*(a.payload.get("path_mapping_rules") or ()), *self._rules]
        # the lane's own variables (its GPUs: CUDA_VISIBLE_DEVICES & co) as a command task gets
        lane_env = self._lane_env(lane) if self._lane_env is not None else {}
        env = {**self._env, **a.env, **lane_env, "THRESHER_JOB_ID": str(a.job_id)}

        def on_line(line: LogLine) -> None:
            current = session.attempt
            stream = "stdout" if line.source == LogSource.OUTPUT else "system"
            self._outbox.add_line(current.attempt_id, current.token, stream, line.text)
            if current.stop.is_set() and not current.recancel and session.runner is not None:
                # A cancel that arrived while the task was being set up: apply it now that
                # the task shows life (from another thread: this one is the session's).
                current.recancel = True
                threading.Thread(target=session.runner.cancel, daemon=True).start()

        def on_progress(percent: float) -> None:
            current = session.attempt
            self._outbox.set_progress(current.attempt_id, current.token, _clamp(percent))

        def on_status(message: str) -> None:
            current = session.attempt
            self._outbox.set_status(current.attempt_id, current.token, message)

        session.runner = OpenJDSessionRunner(
            plan,
            working_dir=self._work_dir / "openjd" / f"lane-{lane}",
            path_mapping_rules=rules,
            on_log_line=on_line,
            on_progress=on_progress,
            on_status=on_status,
            os_env_vars=env,
        )
        with self._lock:
            self._sessions[lane] = session
        return session

    def _system(self, attempt: _Attempt, text: str) -> None:
        self._outbox.add_line(attempt.attempt_id, attempt.token, "system", text)


def _digest(stored: Any) -> str:
    text = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _clamp(percent: float) -> float:
    return min(100.0, max(0.0, float(percent)))


def _result(outcome: TaskOutcome, stop: threading.Event, duration_s: float) -> OpenJDResult:
    status = _STATES.get(outcome.state, "failed")
    if stop.is_set() and status != "succeeded":
        status = "canceled"
    message = None if outcome.succeeded else outcome.message
    return OpenJDResult(status, message, outcome.exit_code, duration_s)
