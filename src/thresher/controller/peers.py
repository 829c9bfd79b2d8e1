"""Active-active controllers on one PostgreSQL: each tells the others of its changes.

A change this controller commits reaches its own held polls through the `Notifier`; `Peers`
listens to that notifier too and announces the change to the other controllers (one NOTIFY,
sent right after the commit, see `thresher.store.cluster.PeerChannel`). A change another
controller announced is taken in on the farm thread: the dispatch index is rebuilt (at once for
a submission, an edit, a cancel; within `index_min_age_s` for a finish while polls wait here
for work) and the held polls here are woken, so a worker polling this controller gets a job
submitted on another within milliseconds. On SQLite there are no peers and nothing of this runs."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.farm_thread import FarmThread
from thresher.controller.job_ends import JobEnds
from thresher.controller.notifier import Notifier
from thresher.store.cluster import PeerChannel, is_postgres
from thresher.store.store import Store

log = logging.getLogger("thresher.controller.peers")


def controller_ident() -> str:
    """This controller process's name among its peers: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Peers:
    """The bridge between this controller's notifier and the other controllers."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        index: DispatchIndex,
        thread: FarmThread,
        *,
        ident: str | None = None,
        heard: Callable[[], None] | None = None,
        job_ends: JobEnds | None = None,
    ) -> None:
        self.ident = ident or controller_ident()
        self.notifier, self.index, self.thread = notifier, index, thread
        self._relaying = False  # set on the farm thread while a peer's change is taken in
        self._count = heard  # told of each peer's change taken in (the metrics)
        # A peer's change heard and not yet taken in (None: none; else whether it is soft):
        # changes heard meanwhile join it, so the farm thread takes in one per round.
        self._waiting: bool | None = None
        self._lock = threading.Lock()
        self.channel: PeerChannel | None = None
        self.job_ends = job_ends
        if is_postgres(store.engine):
            self.channel = PeerChannel(store.engine, self.ident, self._heard, self._ended)

    def start(self) -> None:
        if self.channel is None:
            return
        self.notifier.listeners.append(self._announce)
        if self.job_ends is not None:
            self.job_ends.announce = self.channel.announce_ended
        self.channel.start()

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def _announce(self, soft: bool) -> None:
        """A change committed here (called by the notifier on the committing thread)."""
        if self._relaying or self.notifier.closing or self.channel is None:
            return
        self.channel.announce(soft=soft)

    def _ended(self, job_ids: list[int] | None) -> None:
        """Jobs a peer ended (on the listening thread): their waiters here read them again."""
        if self.job_ends is not None:
            self.job_ends.ended(job_ids, announce=False)

    def _heard(self, soft: bool) -> None:
        """A peer's change (on the listening thread): taken in on the farm thread."""
        with self._lock:
            if self._waiting is not None:
                self._waiting = self._waiting and soft
                return
            self._waiting = soft
        # RuntimeError: the farm thread has stopped, the controller is going down.
        with contextlib.suppress(RuntimeError):
            self.thread.post(self._take_in)

    def _take_in(self) -> None:
        with self._lock:
            soft, self._waiting = bool(self._waiting), None
        if self._count is not None:
            self._count()
        if soft and not self.notifier.waiting:
            # A finish elsewhere, and no poll here waits for work: polls being answered find
            # their work anyway, and the index takes the finish in at its next rebuild (within
            # `index_max_age_s`), without a rebuild for every peer's finish on a busy farm.
            return
        self.index.invalidate(at_once=not soft)
        self._relaying = True
        try:
            self.notifier.notify(soft=True)  # wakes held polls; the index was told above
        finally:
            self._relaying = False
