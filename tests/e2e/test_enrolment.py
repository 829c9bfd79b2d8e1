"""GIVEN a controller and a one-time enrolment code WHEN `thresher worker --code` starts on a
render node THEN it enrols with the code, keeps its own token (0600) and runs work; restarted,
it re-attaches with that token (the spent code is not needed again); its token revoked, it is
refused."""

from __future__ import annotations

import os
import stat

from tests.e2e.conftest import THRESHER, Farm
from thresher.testing import wait_until


def _worker_argv(farm: Farm, name: str, code: str) -> list[str]:
    return [
        THRESHER,
        "worker",
        "--controller",
        farm.url,
        "--code",
        code,
        "--name",
        name,
        "--work-dir",
        str(farm.work_dir(name)),
        "--grace",
        "2",
        "--verbose",
    ]


def test_a_worker_enrols_with_a_code_and_re_attaches_with_its_own_token(
    sqlite_farm: Farm,
) -> None:
    farm = sqlite_farm
    farm.controller()
    with farm.client() as admin:
        code = admin.create_enrol_code().code
        first = farm._spawn("worker-node1", _worker_argv(farm, "node1", code))

        def online() -> bool:
            return any(w.name == "node1" and w.status == "online" for w in admin.workers())

        wait_until(online, timeout=30, what="node1 online")
        kept = farm.work_dir("node1") / "worker-token"
        # online from the controller's commit; the file is written once the answer arrives
        wait_until(kept.exists, timeout=30, what="the worker's token kept")
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
        job = admin.submit("by code", ["true"], frames="1-3")
        wait_until(lambda: admin.job(job.id).status == "succeeded", timeout=30, what="job done")

        first.stop()
        wait_until(lambda: not online(), timeout=30, what="node1 offline")
        farm._spawn("worker-node1", _worker_argv(farm, "node1", code))  # the code is spent
        wait_until(online, timeout=30, what="node1 back with its own token")

        [worker_token] = [t for t in admin.tokens(everyone=True) if t.name == "worker:node1"]
        admin.revoke_token(worker_token.id)
        wait_until(
            lambda: "not known, expired or was revoked" in farm.procs[-1].text(),
            timeout=30,
            what="the worker refused",
        )
