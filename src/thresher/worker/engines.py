"""Engine tasks on a worker: the engine revision an assignment names, its prepared command,
and its output read as events.

- :class:`WorkerEngines` finds the class of ``(name, revision, hash)``: the built-in module
  when the hash is this worker's own built-in source, else the source from the on-disk
  :class:`EngineCache` (``<work dir>/engines``), else fetched once from the controller
  (``GET /api/v1/agent/engines/{name}/{revision}``), checked against the hash and cached.
- :meth:`WorkerEngines.prepare` builds the :class:`EngineTask` and calls ``Engine.prepare``.
- :class:`EngineRun` feeds each output line to ``parse_output`` and reports the events:
  progress on the task, output files on the attempt, frames, status, warnings and errors as
  ``system`` log lines; the last error joins the failure message.

Engine code that raises (loading, ``prepare`` or ``parse_output``) fails that task, with the
traceback in its log; the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thresher.client import APIError, TransportError
from thresher.engines import (
    Engine,
    EngineCache,
    EngineError,
    EngineEvent,
    EngineLoadError,
    EngineTask,
    EventKind,
    PreparedCommand,
    builtin_engines,
    load_builtin,
    load_engine_source,
    source_hash,
)
from thresher.engines.output import STAGING_PREFIX
from thresher.schemas import api, engines
from thresher.worker.outbox import Outbox
from thresher.worker.tasks import Command, FinishStatus

log = logging.getLogger("thresher.worker")

#: Waits between tries to fetch an engine while the controller cannot be reached.
FETCH_RETRIES_S = (0.5, 1.0, 2.0)


class EngineTaskError(Exception):
    """An engine task could not start: the engine did not load or its ``prepare`` failed.
    ``details`` (a traceback, the application's words) belongs in the task's log."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SourceFetcher(Protocol):
    async def engine_source(self, name: str, revision: int) -> engines.EngineSourceOut: ...


class EventSink(Protocol):
    """Where one attempt's engine events go (the outbox, for that attempt)."""

    def line(self, stream: str, text: str) -> None: ...

    def progress(self, percent: float) -> None: ...

    def output(self, path: str) -> None: ...


class WorkerEngines:
    """Engine classes by source hash, for one worker."""

    def __init__(self, fetcher: SourceFetcher, cache_dir: Path) -> None:
        self.fetcher = fetcher
        self.cache = EngineCache(cache_dir)
        self._classes: dict[str, type[Engine]] = {}
        self._builtin: dict[str, str] | None = None  # hash -> name
        self._locks: dict[str, asyncio.Lock] = {}

    def _builtin_name(self, digest: str) -> str | None:
        if self._builtin is None:
            self._builtin = {source_hash(s): n for n, s in builtin_engines().items()}
        return self._builtin.get(digest)

    async def engine_class(
        self, name: str, revision: int | None, digest: str | None
    ) -> type[Engine]:
        """The class of revision ``revision`` of ``name`` whose source hashes to ``digest``."""
        if revision is None or digest is None:
            raise EngineTaskError(f"engine {name!r} has no current revision on the controller")
        known = self._classes.get(digest)
        if known is not None:
            return known
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:  # lanes starting the same new engine fetch it once
            known = self._classes.get(digest)
            if known is not None:
                return known
            try:
                if self._builtin_name(digest) == name:
                    engine_class = load_builtin(name)
                else:
                    source = await self._source(name, revision, digest)
                    engine_class = await asyncio.to_thread(load_engine_source, name, source)
            except EngineLoadError as exc:
                raise EngineTaskError(
                    f"engine {name!r} revision {revision} did not load: {exc.message}", exc.details
                ) from None
            self._classes[digest] = engine_class
            return engine_class

    async def _source(self, name: str, revision: int, digest: str) -> str:
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        for wait in (*FETCH_RETRIES_S, None):
            try:
                fetched = await self.fetcher.engine_source(name, revision)
                break
            except TransportError as exc:
                if wait is None:
                    raise EngineTaskError(f"cannot fetch engine {name!r}: {exc}") from None
                await asyncio.sleep(wait)
            except APIError as exc:
                raise EngineTaskError(
                    f"cannot fetch engine {name!r} revision {revision}: {exc}"
                ) from None
        got = source_hash(fetched.source)
        if got != digest:
            raise EngineTaskError(
                f"engine {name!r} revision {revision} on the controller is not the source this "
                f"task was given (hash {got[:12]}, expected {digest[:12]})"
            )
        self.cache.put(fetched.source)
        log.info("fetched engine %s revision %s (%s)", name, revision, digest[:12])
        return fetched.source

    async def start(
        self, a: api.AssignmentOut, outbox: Outbox, *, work_dir: Path, gpu_ids: tuple[int, ...] = ()
    ) -> EngineRun:
        """The engine run of an engine job's attempt, prepared and ready to start (`gpu_ids`:
        its lane's GPUs); raises :class:`EngineTaskError`."""
        engine, prepared = await self.prepare(
            a, work_dir=work_dir, base_env=dict(os.environ), gpu_ids=gpu_ids
        )
        run = EngineRun(
            name=a.engine or "",
            engine=engine,
            prepared=prepared,
            sink=OutboxSink(outbox, a.attempt_id, a.token),
        )
        run.start_notes()
        return run

    async def prepare(
        self,
        a: api.AssignmentOut,
        *,
        work_dir: Path,
        base_env: Mapping[str, str],
        gpu_ids: tuple[int, ...] = (),
    ) -> tuple[Engine, PreparedCommand]:
        """The engine instance for this attempt and its prepared command."""
        name = a.engine or str(a.payload.get("engine") or "")
        engine_class = await self.engine_class(name, a.engine_revision, a.engine_hash)
        env = {**base_env, **a.env, **task_variables(a)}

        def run_prepare() -> tuple[Engine, PreparedCommand]:
            task = engine_task(a, work_dir=work_dir, gpu_ids=gpu_ids)
            engine = engine_class()
            return engine, engine.prepare(task, base_env=env)

        try:
            return await asyncio.to_thread(run_prepare)
        except EngineError as exc:
            raise EngineTaskError(f"engine {name!r}: {exc.message}") from None
        except Exception as exc:
            raise EngineTaskError(
                f"engine {name!r} raised in prepare: {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            ) from None


def task_variables(a: api.AssignmentOut) -> dict[str, str]:
    return {
        "THRESHER_JOB_ID": str(a.job_id),
        "THRESHER_BLOCK": str(a.block),
        "THRESHER_TASK": str(a.index),
        "THRESHER_FRAMES": ",".join(str(f) for f in a.frames),
    }


def engine_task(
    a: api.AssignmentOut, *, work_dir: Path, gpu_ids: tuple[int, ...] = ()
) -> EngineTask:
    """The :class:`EngineTask` of an engine job's assignment; its work directory (the job's
    ``cwd``, else one per task under ``work_dir``) is created. A job with an ``output``
    renders into the attempt's staging folder (``.thresher-attempt-<id>`` in the output's
    folder), whose files the worker moves into place once the attempt succeeded."""
    payload = a.payload
    workdir = Path(a.cwd) if a.cwd else work_dir / "jobs" / str(a.job_id) / f"{a.block}-{a.index}"
    workdir.mkdir(parents=True, exist_ok=True)
    span = payload.get("job_range")
    return EngineTask(
        job_id=str(a.job_id),
        index=a.index,
        frames=tuple(a.frames),
        workdir=str(workdir),
        input=payload.get("input"),
        inputs=tuple(payload.get("inputs") or ()),
        output=payload.get("output"),
        parameters=dict(payload.get("parameters") or {}),
        block=str(a.block),
        job_range=(int(span[0]), int(span[1])) if span else None,
        lane=a.lane or 0,
        gpu_ids=gpu_ids,
        staging=f"{STAGING_PREFIX}{a.attempt_id}" if payload.get("output") else None,
    )


class OutboxSink:
    """An :class:`EventSink` writing to the outbox for one attempt."""

    def __init__(self, outbox: Outbox, attempt_id: int, token: str) -> None:
        self.outbox, self.attempt_id, self.token = outbox, attempt_id, token

    def line(self, stream: str, text: str) -> None:
        self.outbox.add_line(self.attempt_id, self.token, stream, text)

    def progress(self, percent: float) -> None:
        self.outbox.set_progress(self.attempt_id, self.token, percent)

    def output(self, path: str) -> None:
        self.outbox.add_output(self.attempt_id, self.token, path)


@dataclass
class EngineRun:
    """One attempt's engine while its process runs: reads lines, reports events."""

    name: str
    engine: Engine
    prepared: PreparedCommand
    sink: EventSink
    cancel: Callable[[], None] = lambda: None
    failure: str | None = None
    last_error: str | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def command(self) -> Command:
        return Command(
            argv=list(self.prepared.argv), env=dict(self.prepared.env), cwd=self.prepared.cwd
        )

    def start_notes(self) -> None:
        """What prepare wants said in the log (input conversion), before the process runs."""
        for note in self.prepared.notes:
            self.sink.line("system", f"[engine] {note}")

    def on_line(self, stream: str, text: str) -> None:
        """Called for every output line, after it went to the log."""
        with self._lock:
            if self.failure is not None:
                return
            try:
                events = self.engine.parse_output(text, stream)
            except Exception as exc:
                self.failure = (
                    f"engine {self.name!r} raised in parse_output: {type(exc).__name__}: {exc}"
                )
                for row in traceback.format_exc().rstrip().splitlines():
                    self.sink.line("system", row)
                self.cancel()
                return
            for event in events:
                self._report(event)

    def _report(self, event: EngineEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            self.sink.progress(float(event.value))
        elif event.kind is EventKind.OUTPUT:  # said where it will be once moved into place
            staging = self.prepared.staging
            path = staging.final(str(event.value)) if staging else str(event.value)
            self.sink.output(path)
            self.sink.line("system", f"[engine] wrote {path}")
        elif event.kind is EventKind.FRAME:
            self.sink.line("system", f"[engine] frame {event.value}")
        elif event.kind is EventKind.STATUS:
            self.sink.line("system", f"[engine] {event.value}")
        elif event.kind is EventKind.WARNING:
            self.sink.line("system", f"[engine] warning: {event.value}")
        elif event.kind is EventKind.ERROR:
            self.last_error = str(event.value)
            self.sink.line("system", f"[engine] error: {event.value}")

    def outcome(self, status: FinishStatus, message: str | None) -> tuple[FinishStatus, str | None]:
        """The finish report's (status, message): an engine failure fails the task whatever
        the process did; a failed run names the application's last error."""
        if self.failure is not None:
            return "failed", self.failure
        if status == "failed" and self.last_error:
            return status, f"{message}: {self.last_error}" if message else self.last_error
        return status, message
