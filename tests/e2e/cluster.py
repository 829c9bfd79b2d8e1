"""Several `thresher controller` processes on one PostgreSQL database, started by the test.

Every controller shares one data directory (the admin token is written once, by whichever
comes up first) and listens on a port of its own; `Cluster.urls` lists them all, as workers
and clients take them (comma-separated)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import THRESHER, Farm, Proc
from thresher.client import Client
from thresher.testing import wait_until

#: The database of the cluster tests: PostgreSQL only (controllers share it).
PG_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


class Cluster(Farm):
    """A farm of several controllers; `url` is the first live one's (for `client()`)."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        super().__init__(tmp, db_url)
        self.controllers: list[Proc | None] = []
        self.ports: list[int] = []

    def start_controllers(
        self, n: int, *, heartbeat: float = 0.5, lease: float = 3.0, extra: Sequence[str] = ()
    ) -> list[Proc]:
        """Start `n` controllers at the same moment (on an empty database, they race to set up
        its schema) and wait until every one listens."""
        assert self.db_url is not None
        procs = []
        for _ in range(n):
            argv = [THRESHER, "controller", "--data-dir", str(self.data_dir)]
            argv += ["--host", "127.0.0.1", "--port", "0", "--database-url", self.db_url]
            argv += ["--heartbeat", str(heartbeat), "--lease", str(lease), *extra]
            procs.append(self._spawn("controller", argv))
        for proc in procs:
            match = proc.wait_for(r"listening on (http://127\.0\.0\.1:(\d+))", timeout=60)
            self.controllers.append(proc)
            self.ports.append(int(match.group(2)))
        self.token = (self.data_dir / "admin-token").read_text().strip()
        self.url = self.url_of(0)
        return procs

    def url_of(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    @property
    def urls(self) -> str:
        """Every controller's URL, comma-separated (what workers and clients take)."""
        return ",".join(self.url_of(i) for i in range(len(self.ports)))

    def kill9(self, i: int) -> None:
        proc = self.controllers[i]
        assert proc is not None
        proc.kill9()
        self.controllers[i] = None
        live = [j for j, p in enumerate(self.controllers) if p is not None]
        self.url = self.url_of(live[0])

    def client_of(self, i: int) -> Client:
        return Client(self.url_of(i), self.token)

    def metrics(self, i: int) -> str:
        answer = httpx.get(
            self.url_of(i) + "/metrics",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.text

    def cluster_worker(self, name: str, *, controllers: str, lanes: int = 1) -> Proc:
        """A worker given `controllers` (comma-separated URLs), the first tried first."""
        argv = [THRESHER, "worker", "--controller", controllers, "--token", self.token]
        argv += ["--name", name, "--lanes", str(lanes), "--grace", "2"]
        argv += ["--work-dir", str(self.work_dir(name)), "--verbose"]
        proc = self._spawn(f"worker-{name}", argv)
        with self.client() as client:
            wait_until(
                lambda: any(w.name == name and w.status == "online" for w in client.workers()),
                timeout=30,
                what=f"worker {name} online",
            )
        return proc


def cluster_of(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, db_url)
    try:
        yield c
    finally:
        c.stop_all()
