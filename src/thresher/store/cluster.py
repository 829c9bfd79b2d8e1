"""Several controllers on one PostgreSQL: what they share besides the tables.

- `PeerChannel`: LISTEN/NOTIFY between controllers. A change committed on one controller (a
  submission, a finish, a cancel) is announced with one NOTIFY on a connection of its own, and
  every other controller hears it on a dedicated listening connection, in a thread.
- `SingletonLease`: a chore only one controller may do at a time (the sweep of silent workers)
  runs under a session advisory lock. The lock dies with its connection: a controller killed
  (-9) or cut off loses it as soon as PostgreSQL sees its connection go (TCP keepalives bound
  that for a cut-off host), and another controller takes it at its next try.
- `exclusive`: a session advisory lock held around a startup step (the schema upgrade, the
  first admin token, the built-in engines), so controllers started at once all come up.

On SQLite (one controller per database file) there are no peers, every lease is held, and
`exclusive` takes no lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # psycopg is installed with the `postgres` extra: imported only there
    import psycopg

log = logging.getLogger("thresher.store.cluster")

#: The LISTEN/NOTIFY channel controllers announce their changes on.
CHANNEL = "thresher_changes"
#: How long a soft change (a finish) waits to share its NOTIFY with the next ones.
SOFT_DELAY_S = 0.02
#: The longest list of ended jobs' ids one NOTIFY carries (its payload is at most 8,000
#: bytes); beyond, it says `*`: peers' waiters read their jobs again.
MAX_ENDED_CHARS = 4000
#: How long a broken listening or lease connection waits before it is opened again.
RECONNECT_S = 0.5
#: How long the listener waits for notifications at a time (it also looks at `close` then;
#: `close` ends the wait at once).
LISTEN_WAIT_S = 1.0


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def lock_key(name: str) -> int:
    """The advisory lock key of a name: a stable signed 32-bit number (CRC-32)."""
    value = zlib.crc32(f"thresher:{name}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def conninfo(engine: sa.Engine) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL engine's URL."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _pg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def _interrupt(conn: psycopg.Connection[Any] | None) -> None:
    """End another thread's wait for notifications on `conn` at once: its socket is shut
    down, so the wait fails as on a lost connection. (Cancelling, as before, did not: no query
    runs while it waits, and a stopping controller waited up to a second for it.)"""
    if conn is None:
        return
    with (
        contextlib.suppress(Exception),  # already closed, or never connected
        socket.socket(fileno=os.dup(conn.fileno())) as sock,
    ):
        sock.shutdown(socket.SHUT_RDWR)


def _connect(engine: sa.Engine) -> psycopg.Connection[Any]:
    """A connection of its own, autocommit, with TCP keepalives: a peer cut off from the
    network loses its lease within about 11 s (idle 5 + 3 probes 2 s apart)."""
    import psycopg

    return psycopg.connect(
        conninfo(engine),
        autocommit=True,
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
    )


@contextlib.contextmanager
def exclusive(engine: sa.Engine, name: str) -> Iterator[None]:
    """Hold the advisory lock `name` (waiting for it) while the block runs; on SQLite, nothing.
    On its own connection, so the block's own transactions are free to commit as they go."""
    if not is_postgres(engine):
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(name)})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            conn.commit()


class SingletonLease:
    """A chore only one controller does at a time. `held()` says whether this controller
    holds it now, taking it when it is free; on SQLite always True."""

    def __init__(self, engine: sa.Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self._key = lock_key(name)
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._lock = threading.Lock()

    def held(self) -> bool:
        if not is_postgres(self.engine):
            return True
        with self._lock:
            try:
                return self._check()
            except _pg_error() as exc:
                if self._held:
                    log.warning("lost the %s lease: %s", self.name, exc)
                self._drop()
                return False

    def _check(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._held = False
            self._conn = _connect(self.engine)
        if self._held:
            self._conn.execute("SELECT 1")  # still connected, so still held
            return True
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        self._held = bool(row and row[0])
        if self._held:
            log.info("took the %s lease", self.name)
        return self._held

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(_pg_error()):
                self._conn.close()
        self._conn = None

    def release(self) -> None:
        with self._lock:
            self._drop()


class PeerChannel:
    """Announces this controller's changes to its peers and hears theirs (PostgreSQL only).

    `announce(soft)` returns at once: a sender thread sends what was announced meanwhile as one
    NOTIFY (a hard change wins over soft ones). A listener thread calls `on_peer(soft)` for
    every notification another controller sent; its own are recognised by the sender's id."""

    def __init__(
        self,
        engine: sa.Engine,
        ident: str,
        on_peer: Callable[[bool], None],
        on_ended: Callable[[list[int] | None], None] | None = None,
    ) -> None:
        self.engine, self.ident, self.on_peer, self.on_ended = engine, ident, on_peer, on_ended
        self._pending: bool | None = None  # None: nothing to send; else whether it is soft
        self._ended: set[int] = set()  # jobs that ended here, not sent yet
        self._cond = threading.Condition()
        self._closing = False
        self.sent = 0
        self.heard = 0
        self.listening = threading.Event()  # set while the listening connection is up
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._missed = False  # the listening connection broke: notifications may be lost
        self._threads = [
            threading.Thread(target=self._send_loop, name="thresher-notify-send", daemon=True),
            threading.Thread(target=self._listen_loop, name="thresher-notify-listen", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def listener_thread(self) -> threading.Thread:
        return self._threads[1]

    @property
    def closing(self) -> bool:
        return self._closing

    def announce(self, *, soft: bool) -> None:
        with self._cond:
            self._pending = soft if self._pending is None else (self._pending and soft)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        _interrupt(self._listen_conn)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- sending --------------------------------------------------------------------------------

    def announce_ended(self, job_ids: list[int]) -> None:
        """Jobs that ended here: sent at once (those waiting for them on a peer wake), in the
        NOTIFY of the change that ended them when it has not gone yet."""
        with self._cond:
            self._ended.update(job_ids)
            self._cond.notify()

    def _next(self) -> tuple[str, str] | None:
        """What to send next: (kind, ended jobs), or None when closing. A soft change (a
        finish) waits up to `SOFT_DELAY_S` for others to share its NOTIFY (peers take
        finishes in that lazily anyway); a hard one, or a job's end, goes at once and takes
        what waits with it. Kind: "h" hard, "s" soft, "e" jobs ended and nothing else."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._pending is not None or bool(self._ended) or self._closing
            )
            if self._pending and not self._ended:
                self._cond.wait_for(
                    lambda: self._pending is False or bool(self._ended) or self._closing,
                    SOFT_DELAY_S,
                )
            soft, self._pending = self._pending, None
            ended, self._ended = sorted(self._ended), set()
        if soft is None and not ended:
            return None
        kind = "e" if soft is None else "s" if soft else "h"
        text = ",".join(str(i) for i in ended)
        return kind, ("*" if len(text) > MAX_ENDED_CHARS else text)

    def _send_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            what = self._next()
            if what is None:
                break
            kind, ended = what
            try:
                if conn is None or conn.closed:
                    conn = _connect(self.engine)
                payload = f"{self.ident}:{kind}" + (f"|{ended}" if ended else "")
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                self.sent += 1
            except _pg_error() as exc:  # peers rebuild from the database within seconds
                log.warning("could not tell the other controllers of a change: %s", exc)
                conn = None
                time.sleep(RECONNECT_S)
        if conn is not None:
            conn.close()

    # -- listening ------------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        while not self._closing:
            try:
                self._listen_once()
            except _pg_error() as exc:
                if self.closing:
                    break
                if self.listening.is_set():
                    log.warning("listening for other controllers failed: %s", exc)
                self.listening.clear()
                self._missed = True
                time.sleep(RECONNECT_S)

    def _listen_once(self) -> None:
        with _connect(self.engine) as conn:
            self._listen_conn = conn
            if not self._closing:  # else `close` came while it connected: it saw no connection
                self._listen(conn)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self.listening.set()
        if self._missed:  # what peers did meanwhile was not heard: take it as a change
            self._missed = False
            self.on_peer(False)
            if self.on_ended is not None:
                self.on_ended(None)  # and any job may have ended
        while not self._closing:
            for note in conn.notifies(timeout=LISTEN_WAIT_S):
                self._heard(note.payload)
        self.listening.clear()

    def _heard(self, payload: str) -> None:
        """A payload is `ident:kind`, then `|` and the ids of the jobs that ended (comma
        separated; `*`: too many to list, any may have ended)."""
        head, _, ended = payload.partition("|")
        ident, _, kind = head.rpartition(":")
        if ident == self.ident:
            return
        self.heard += 1
        try:
            if kind != "e":
                self.on_peer(kind == "s")
            if ended and self.on_ended is not None:
                self.on_ended(None if ended == "*" else [int(i) for i in ended.split(",")])
        except Exception:
            log.exception("a peer's change could not be taken in")
