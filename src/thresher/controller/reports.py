"""Workers' reports: the output and the finishes a poll or a report carries, stored in the
caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from thresher.controller.convert import finish_report
from thresher.controller.dispatch import DispatchIndex
from thresher.controller.jobs import Jobs
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import Clock
from thresher.core.errors import StaleAttempt
from thresher.schemas import api
from thresher.store.store import Store

Report = tuple[Sequence[api.OutputBatch], Sequence[api.FinishIn]]
"""One poll's or report's output batches and finishes."""


class Reports:
    """Stores workers' reports; tells the dispatch index and the job's end of the finishes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ControllerSettings,
        *,
        index: DispatchIndex,
        jobs: Jobs,
    ) -> None:
        self.store, self.clock, self.settings = store, clock, settings
        self.index, self.jobs = index, jobs
        self.log_bytes: Callable[[int], None] | None = None  # told of output taken in

    def store_all(self, reports: Sequence[Report], workers: Sequence[int]) -> list[list[int]]:
        """Store the output, then the finishes, of one or more reports (polls run together),
        sent by these workers; each report's attempts whose reports were stale. Every finish
        goes in one statement set (`finish_many`): a worker holding short tasks ahead reports
        several per poll, a group of polls run together one each, and the workers'
        reconciliations read nothing more (`Snapshots.held_after_reports`)."""
        stales: list[list[int]] = []
        for output, _ in reports:
            stale: list[int] = []
            for batch in output:
                try:
                    self._record_output(batch)
                except StaleAttempt:
                    stale.append(batch.attempt_id)
            stales.append(stale)
        finished = [fin for _, fins in reports for fin in fins]
        if not finished:
            return stales
        results = iter(
            self.store.attempts.finish_many(
                [finish_report(fin) for fin in finished], now=self.clock.now(), workers=workers
            )
        )
        for (_, fins), stale in zip(reports, stales, strict=True):
            for fin in fins:
                result = next(results)
                if isinstance(result, StaleAttempt):
                    stale.append(fin.attempt_id)
                    continue
                if fin.status in ("failed", "timed_out"):
                    self.store.events.emit_task_failed(fin.attempt_id, now=self.clock.now())
                if result is not None and self.index.finished(
                    fin.attempt_id, fin.status, fin.duration_s
                ):
                    # Only a failure can make tasks never run (a success turned into a failure
                    # by a minimum run time is marked at the next index rebuild, which looks).
                    self.jobs.note_if_final(result, mark=fin.status != "succeeded")
        return stales

    def _record_output(self, batch: api.OutputBatch) -> None:
        if self.log_bytes is not None and batch.lines:
            self.log_bytes(sum(len(text) for _, text in batch.lines))
        self.store.attempts.record_output(
            batch.attempt_id,
            batch.token,
            lines=batch.lines,
            progress=batch.progress,
            outputs=batch.outputs,
            status_message=batch.status_message,
            max_log_bytes=self.settings.max_log_bytes_per_task,
            first_line=batch.first_line,
            repeat=batch.repeat,
        )
