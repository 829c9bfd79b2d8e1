"""The worker side: run a job's tasks, one at a time, in one openjd-sessions Session.

The Session is opened by the first task. The environment templates and then the job's
environments are entered once; a step's environments are entered when the step changes and
exited when leaving it; `close()` exits whatever is still entered and removes the session's
working directory. A task that fails or is canceled leaves an OpenJD session able only to exit
its environments, so the runner ends that session right away; the next task opens a fresh one.

A task's failure is data (`TaskOutcome`), never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from openjd.model import ParameterValue, ParameterValueType, RevisionExtensions
from openjd.sessions import (
    LOG,
    ActionState,
    ActionStatus,
    LogContent,
    PathMappingRule,
    Session,
    SessionState,
)

from thresher.openjd.steps import StepPlan
from thresher.openjd.template import JobPlan

__all__ = ["LogLine", "LogSource", "OpenJDSessionRunner", "TaskOutcome"]


class LogSource(StrEnum):
    OUTPUT = "output"
    """A line a task's or environment's process wrote (stdout and stderr, interleaved)."""
    SESSION = "session"
    """A line the session wrote about what it does (banners, files, process control)."""


@dataclass(frozen=True)
class LogLine:
    text: str
    source: LogSource
    created: float
    """When the line was logged (seconds since the epoch)."""


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended. `state` is the OpenJD action state: success, failed, canceled, timeout."""

    succeeded: bool
    state: str
    exit_code: int | None
    message: str
    fail_message: str | None = None
    """What the task reported with `openjd_fail:`, if anything."""


class OpenJDSessionRunner:
    """Runs the tasks of one job in an OpenJD session, on one lane of a worker.

    `plan` is a JobPlan or its stored form (`JobPlan.to_json()`). `working_dir` is where the
    session's working directory is made. `path_mapping_rules` are rules in OpenJD's
    `pathmapping-1.0` form (`source_path_format`, `source_path`, `destination_path`).

    The callbacks run on the thread that reads the process's output: keep them quick.
    `run_task` blocks; `cancel` may be called from any thread.
    """

    def __init__(
        self,
        plan: JobPlan | Mapping[str, Any],
        *,
        working_dir: str | Path,
        path_mapping_rules: Sequence[Mapping[str, str] | PathMappingRule] = (),
        on_log_line: Callable[[LogLine], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        os_env_vars: Mapping[str, str] | None = None,
        session_id: str | None = None,
    ) -> None:
        self._plan = plan if isinstance(plan, JobPlan) else JobPlan.from_json(plan)
        self._working_dir = Path(working_dir)
        self._rules = [
            rule if isinstance(rule, PathMappingRule) else PathMappingRule.from_dict(dict(rule))
            for rule in path_mapping_rules
        ]
        self._on_log_line = on_log_line
        self._on_progress = on_progress
        self._on_status = on_status
        self._os_env_vars = dict(os_env_vars or {})
        self._session_id = session_id or f"thresher-{uuid.uuid4().hex}"
        self._session: Session | None = None
        self._handler: _SessionLogHandler | None = None
        self._entered: list[_Entered] = []
        self._step: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._status: ActionStatus | None = None
        self._progress: float | None = None
        self._status_message: str | None = None
        self._cancel_requested = False
        self._cancel_time_limit: timedelta | None = None

    @property
    def plan(self) -> JobPlan:
        return self._plan

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def working_directory(self) -> Path | None:
        """The open session's working directory, if a session is open."""
        return self._session.working_directory if self._session is not None else None

    def run_task(self, step_name: str, task_params: Mapping[str, Any]) -> TaskOutcome:
        """Run one task of `step_name` with the given task parameter values (the text that
        `StepPlan.task_parameters` returns). Raises ValueError for an unknown step or values
        outside the step's parameter space."""
        try:
            step = self._plan.step(step_name)
        except KeyError:
            raise ValueError(f"the job has no step {step_name!r}") from None
        parameters = _task_parameter_set(step, task_params)
        with self._lock:
            self._cancel_requested = False
        failure = self._open_session() or self._enter_step(step)
        if failure is not None:
            return failure
        assert self._session is not None
        session = self._session
        status = self._run_action(
            lambda: session.run_task(
                step_script=step.model.script,
                task_parameter_values=parameters,
                step_name=step.name,
                resolved_symtab=self._plan.symbol_tables.get(step.name),
            )
        )
        outcome = _outcome(status, what="task")
        if not outcome.succeeded:
            self._end_session()
        return outcome

    def cancel(self, *, time_limit: timedelta | None = None) -> None:
        """Cancel the running task with its own cancelation method (by default terminate; a
        NOTIFY_THEN_TERMINATE action gets its notice first). `time_limit` bounds the grace."""
        with self._lock:
            self._cancel_requested = True
            self._cancel_time_limit = time_limit
        self._cancel_running_action()

    def _cancel_running_action(self) -> None:
        session = self._session
        if session is not None and session.state == SessionState.RUNNING:
            with contextlib.suppress(RuntimeError):  # the action ended meanwhile
                session.cancel_action(time_limit=self._cancel_time_limit)

    def close(self) -> bool:
        """Exit every entered environment, last first, and end the session. Returns False when
        an environment's exit action failed."""
        return self._end_session()

    def __enter__(self) -> OpenJDSessionRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- session lifecycle ---------------------------------------------------------------

    def _open_session(self) -> TaskOutcome | None:
        if self._session is not None:
            return None
        _guard_spawns()
        self._working_dir.mkdir(parents=True, exist_ok=True)
        self._handler = _SessionLogHandler(self._session_id, self._on_log_line)
        LOG.addHandler(self._handler)
        try:
            self._session = Session(
                session_id=self._session_id,
                job_parameter_values=self._plan.session_parameter_values(),
                job_name=self._plan.name,
                path_mapping_rules=self._rules or None,
                callback=self._on_action_status,
                os_env_vars=self._os_env_vars or None,
                session_root_directory=self._working_dir,
                revision_extensions=RevisionExtensions(
                    spec_rev=self._plan.job.revision,
                    supported_extensions=list(self._plan.extensions),
                ),
            )
        except RuntimeError as exc:
            self._detach_handler()
            return TaskOutcome(False, "failed", None, f"could not start the session: {exc}")
        environments = [
            *(template.environment for template in self._plan.template.env_models),
            *(self._plan.job.jobEnvironments or ()),
        ]
        for environment in environments:
            failure = self._enter(environment, step=None)
            if failure is not None:
                self._end_session()
                return failure
        return None

    def _enter_step(self, step: StepPlan) -> TaskOutcome | None:
        if self._step == step.name:
            return None
        if self._step is not None:
            failure = self._exit_step_environments()
            if failure is not None:
                self._end_session()
                return failure
        self._step = step.name
        for environment in step.model.stepEnvironments or ():
            failure = self._enter(environment, step=step.name)
            if failure is not None:
                self._end_session()
                return failure
        return None

    def _enter(self, environment: Any, *, step: str | None) -> TaskOutcome | None:
        session = self._session
        assert session is not None
        table = self._plan.symbol_tables.get(step) if step is not None else None
        identifier = f"{uuid.uuid4().hex[:8]} {environment.name}"
        options: dict[str, Any] = {"step_name": step} if step is not None else {}

        def enter() -> None:
            session.enter_environment(
                environment=environment,
                identifier=identifier,
                resolved_symtab=table,
                **options,
            )

        status = self._run_action(enter)
        if identifier in session.environments_entered:
            self._entered.append(_Entered(identifier, str(environment.name), step, table))
        outcome = _outcome(status, what=f"entering environment {environment.name!r}")
        return None if outcome.succeeded else outcome

    def _exit_step_environments(self) -> TaskOutcome | None:
        failure = None
        while self._entered and self._entered[-1].step is not None:
            outcome = self._exit(keep_running=True)
            failure = failure or outcome
        self._step = None
        return failure

    def _exit(self, *, keep_running: bool) -> TaskOutcome | None:
        session = self._session
        assert session is not None
        entered = self._entered.pop()
        # An exit runs even after a cancel: it is how the environment cleans up.
        status = self._run_action(
            lambda: session.exit_environment(
                identifier=entered.identifier,
                keep_session_running=keep_running,
                resolved_symtab=entered.table,
            ),
            cancelable=False,
        )
        outcome = _outcome(status, what=f"exiting environment {entered.name!r}")
        return None if outcome.succeeded else outcome

    def _end_session(self) -> bool:
        session = self._session
        if session is None:
            return True
        clean = True
        if session.state == SessionState.RUNNING:
            self.cancel()
            self._done.wait()
        while self._entered:
            if session.state not in (SessionState.READY, SessionState.READY_ENDING):
                break
            clean = self._exit(keep_running=False) is None and clean
        session.cleanup()
        self._session = None
        self._entered.clear()
        self._step = None
        self._detach_handler()
        return clean

    def _detach_handler(self) -> None:
        if self._handler is not None:
            LOG.removeHandler(self._handler)
            self._handler = None

    # -- one action at a time ------------------------------------------------------------

    def _run_action(self, start: Callable[[], None], *, cancelable: bool = True) -> ActionStatus:
        self._done.clear()
        self._status = None
        self._progress = None
        self._status_message = None
        with self._lock:
            if self._cancel_requested and cancelable:
                return ActionStatus(state=ActionState.CANCELED)
        try:
            start()
        except (RuntimeError, ValueError) as exc:
            return ActionStatus(state=ActionState.FAILED, fail_message=str(exc))
        with self._lock:
            cancel = self._cancel_requested and cancelable
        if cancel:  # asked for while the action was starting
            self._cancel_running_action()
        self._done.wait()
        return self._finished_status()

    def _finished_status(self) -> ActionStatus:
        status = self._status
        if status is None:  # _done is set only together with a status
            raise RuntimeError("the action ended without a status")
        return status

    def _on_action_status(self, session_id: str, status: ActionStatus) -> None:
        if status.progress is not None and status.progress != self._progress:
            self._progress = status.progress
            if self._on_progress is not None:
                self._on_progress(status.progress)
        if status.status_message is not None and status.status_message != self._status_message:
            self._status_message = status.status_message
            if self._on_status is not None:
                self._on_status(status.status_message)
        if status.state != ActionState.RUNNING:
            self._status = status
            self._done.set()


_spawn_lock = threading.Lock()
_guarded = False


def _guard_spawns() -> None:
    """Serialise openjd-sessions' writing of files against its starting of processes.

    A session runs each action through a script it writes and then executes. With several
    sessions in one process (one per lane), another thread's fork may inherit the descriptor of
    a script still open for writing, and executing that script then fails with ETXTBSY ("Text
    file busy"). Holding one lock while a file is open for writing and while Popen starts a
    process (Popen returns once the child has executed, its inherited descriptors closed)
    removes the race. Installed once per process, on the first session.
    """
    global _guarded
    with _spawn_lock:
        if _guarded:
            return
        from openjd.sessions import _embedded_files, _subprocess

        open_context = getattr(_embedded_files, "_open_context")  # noqa: B009
        popen = getattr(_subprocess, "Popen")  # noqa: B009

        @contextlib.contextmanager
        def guarded_open(*args: Any, **kwargs: Any) -> Iterator[int]:
            with _spawn_lock, open_context(*args, **kwargs) as fd:
                yield fd

        def guarded_popen(*args: Any, **kwargs: Any) -> Any:
            with _spawn_lock:
                return popen(*args, **kwargs)

        setattr(_embedded_files, "_open_context", guarded_open)  # noqa: B010
        setattr(_subprocess, "Popen", guarded_popen)  # noqa: B010
        _guarded = True


@dataclass(frozen=True)
class _Entered:
    identifier: str
    name: str
    step: str | None
    """The step whose environment this is; None for the job's and the environment templates'."""
    table: Any
    """The symbol table it was entered with; its exit gets the same one."""


class _SessionLogHandler(logging.Handler):
    """Passes on the records of one session; openjd-sessions logs every session to one logger."""

    def __init__(self, session_id: str, on_log_line: Callable[[LogLine], None] | None) -> None:
        super().__init__(level=logging.INFO)
        self._session_id = session_id
        self._on_log_line = on_log_line

    def emit(self, record: logging.LogRecord) -> None:
        if self._on_log_line is None or getattr(record, "session_id", None) != self._session_id:
            return
        content = getattr(record, "openjd_log_content", None)
        source = LogSource.OUTPUT if content == LogContent.COMMAND_OUTPUT else LogSource.SESSION
        self._on_log_line(LogLine(record.getMessage(), source, record.created))


def _task_parameter_set(step: StepPlan, values: Mapping[str, Any]) -> dict[str, ParameterValue]:
    unknown = set(values) - set(step.parameter_types)
    if unknown:
        raise ValueError(f"step {step.name!r} has no task parameters {sorted(unknown)}")
    parameters = {
        name: ParameterValue(type=ParameterValueType(kind), value=str(values[name]))
        for name, kind in step.parameter_types.items()
        if name in values
    }
    try:
        step.space.validate_containment(parameters)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"not a task of step {step.name!r}: {exc}") from None
    return parameters


def _outcome(status: ActionStatus, *, what: str) -> TaskOutcome:
    state = ActionState(status.state)
    if state == ActionState.SUCCESS:
        message = "succeeded"
    elif state == ActionState.CANCELED:
        message = f"{what} canceled"
    elif state == ActionState.TIMEOUT:
        message = f"{what} timed out"
    elif status.exit_code is not None:
        message = f"{what} failed with exit code {status.exit_code}"
    else:
        message = f"{what} failed"
    if state != ActionState.SUCCESS and status.fail_message:
        message = f"{message}: {status.fail_message}"
    return TaskOutcome(
        succeeded=state == ActionState.SUCCESS,
        state=state.value,
        exit_code=status.exit_code,
        message=message,
        fail_message=status.fail_message,
    )
