"""What a PostgreSQL bench run did to the database, minute by minute (bench/dispatch.py).

A held-back vacuum (`--hold-vacuum`) slows the hot statements as dead row versions pile up; to
see WHICH statements grow and how the hot tables swell, a thread samples once a minute over the
window: the blocks and tasks tables' sizes and update counts (pg_stat_user_tables), and, when
the server preloads pg_stat_statements, every statement's calls and execution time. The result
gives each of the busiest statements' mean time per minute, so a growing one stands out. Each
sample also times a plain Python loop (`python_loop_ms`: the shared VM's speed moves from one
minute to the next) and reads the whole machine's busy share since the last sample.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import sqlalchemy as sa

import _common as c

TABLES = ("blocks", "tasks")
TOP = 16  # statements reported, by total execution time over the window


class PgWatch:
    """Samples at start(), then every `every_s` seconds until stop(), on a connection of its
    own (autocommit: it must not hold a snapshot itself)."""

    def __init__(self, url: str, *, every_s: float = 60.0) -> None:
        self._engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[dict[str, Any]] = []
        self.statements_on = self._enable_statements()

    def _enable_statements(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                conn.execute(sa.text("SELECT pg_stat_statements_reset()"))
                conn.execute(sa.text("SELECT count(*) FROM pg_stat_statements")).scalar()
        except sa.exc.DBAPIError:  # not preloaded (shared_preload_libraries) or not installed
            return False
        return True

    def tables(self) -> dict[str, dict[str, int]]:
        """Each hot table's updates, HOT updates, dead rows and size with its indexes."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT relname, n_tup_upd, n_tup_hot_upd, n_dead_tup,"
                    " pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables"
                    " WHERE relname = ANY(:names)"
                ),
                {"names": list(TABLES)},
            ).all()
        return {
            r.relname: {
                "updates": r.n_tup_upd,
                "hot_updates": r.n_tup_hot_upd,
                "dead_rows": r.n_dead_tup,
                "bytes_with_indexes": r.bytes,
            }
            for r in rows
        }

    def _statements(self) -> dict[str, tuple[int, float]]:
        """Calls and milliseconds so far of each statement of this database (by its text)."""
        if not self.statements_on:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT s.query, sum(s.calls) AS calls, sum(s.total_exec_time) AS ms"
                    " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database() GROUP BY s.query"
                )
            ).all()
        # One statement has an entry per combination of its parameters' types (psycopg sends
        # an int as int2, int4 or int8 by its value), each with its own text: summed by the
        # text's start.
        out: dict[str, tuple[int, float]] = {}
        for r in rows:
            key = " ".join(r.query.split())[:160]
            calls, ms = out.get(key, (0, 0.0))
            out[key] = (calls + int(r.calls), ms + float(r.ms))
        return out

    def _sample(self) -> None:
        self.samples.append(
            {
                "tables": self.tables(),
                "statements": self._statements(),
                "python_loop_ms": c.python_loop_ms(tries=3),
                "cpu_busy_pct": psutil.cpu_percent(interval=None),
            }
        )

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="pg-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def stop(self) -> dict[str, Any]:
        """Stops sampling (one last sample) and sums up; disposes of the engine."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._engine.dispose()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        first, last = self.samples[0], self.samples[-1]
        out: dict[str, Any] = {
            "tables_before": first["tables"],
            "tables_after": last["tables"],
            "bytes_per_minute": {
                t: [s["tables"].get(t, {}).get("bytes_with_indexes") for s in self.samples]
                for t in TABLES
            },
            "python_loop_ms_per_minute": [s["python_loop_ms"] for s in self.samples],
            # The first is since an earlier call: not a minute of the window.
            "cpu_busy_pct_per_minute": [s["cpu_busy_pct"] for s in self.samples[1:]],
            "pg_stat_statements": self.statements_on,
        }
        if self.statements_on:
            out["statements"] = self._top_statements()
        return out

    def _top_statements(self) -> list[dict[str, Any]]:
        """The busiest statements' calls in all and mean milliseconds in each sampled minute."""
        last = self.samples[-1]["statements"]
        first = self.samples[0]["statements"]

        def total_ms(q: str) -> float:
            return last[q][1] - first.get(q, (0, 0.0))[1]

        top = sorted(last, key=total_ms, reverse=True)[:TOP]
        out = []
        for q in top:
            means: list[float | None] = []
            calls_per_minute = []
            for a, b in zip(self.samples, self.samples[1:], strict=False):
                c0, t0 = a["statements"].get(q, (0, 0.0))
                c1, t1 = b["statements"].get(q, (0, 0.0))
                means.append(round((t1 - t0) / (c1 - c0), 4) if c1 > c0 else None)
                calls_per_minute.append(c1 - c0)
            calls = last[q][0] - first.get(q, (0, 0.0))[0]
            out.append(
                {
                    "query": q,
                    "calls": calls,
                    "total_ms": round(total_ms(q), 1),
                    "mean_ms_per_minute": means,
                    "calls_per_minute": calls_per_minute,
                }
            )
        return out
