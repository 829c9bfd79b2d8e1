"""A worker stopped (SIGSTOP) past its lease, then resumed (SIGCONT).

Two shapes of it: the whole host frozen (the worker and its tasks, as a suspended VM or laptop),
whose tasks another worker takes over; and the worker's process alone stopped while its tasks
finish, with no other worker to take them."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import Farm, Proc, pid_alive
from tests.faults.conftest import Ledger, assert_exactly_once, signal_groups, task_processes
from thresher.testing import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

LEASE_S = 3.0
# 2.5 s of work in 25 steps. Frozen at its start, a task cannot end before its worker, resumed,
# hears that it was lost and kills it. (One `sleep 2.5` would end the moment it is resumed: the
# time it was stopped counts against its deadline.)
WORK = "i=0; while [ $i -lt 25 ]; do sleep 0.1; i=$((i + 1)); done"


def worker_status(farm: Farm, name: str) -> str:
    with farm.client() as client:
        return client.worker(name).status


def taken_over(farm: Farm, job_id: int) -> bool:
    """Whether every task lost on the frozen worker has an attempt on another worker."""
    with farm.client() as client:
        attempts = client.attempts(job_id)
    lost = {(a.block, a.index) for a in attempts if a.status == "lost"}
    again = {(a.block, a.index) for a in attempts if a.worker != "frozen"}
    return bool(lost) and lost <= again


def running_tasks(worker: Proc, lanes: int) -> list[int]:
    """The worker's task processes once every lane runs one (else an empty list)."""
    pids = task_processes(worker)
    return pids if len(pids) == lanes else []


def test_frozen_host_past_its_lease_loses_its_tasks_to_another(
    sqlite_farm: Farm, ledger: Ledger
) -> None:
    farm = sqlite_farm
    farm.controller(heartbeat=0.5, lease=LEASE_S)
    frozen = farm.worker("frozen", lanes=2)
    farm.worker("steady", lanes=2)
    frames = range(1, 13)
    with farm.client() as client:
        job = client.submit("freeze", ledger.command(WORK), frames="1-12")
    tasks = wait_until(lambda: running_tasks(frozen, 2), timeout=30, what="both lanes busy")
    frozen.popen.send_signal(signal.SIGSTOP)
    signal_groups(tasks, signal.SIGSTOP)
    try:
        wait_until(
            lambda: worker_status(farm, "frozen") == "offline",
            timeout=LEASE_S + 20,
            what="the frozen worker offline",
        )
        # The other worker takes the lost tasks before the frozen one comes back (had nobody
        # taken them, the frozen worker would re-attach its attempts and go on).
        wait_until(lambda: taken_over(farm, job.id), timeout=30, what="the lost tasks taken over")
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
        signal_groups(tasks, signal.SIGCONT)
    wait_until(lambda: not any(pid_alive(p) for p in tasks), timeout=10, what="lost tasks killed")
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
        attempts = client.attempts(job.id)
    assert_exactly_once(farm, job.id, ledger, frames)
    lost = [a for a in attempts if a.status == "lost"]
    assert len(lost) == 2
    assert {a.worker for a in lost} == {"frozen"}
    wait_until(
        lambda: worker_status(farm, "frozen") == "online", timeout=10, what="frozen re-attached"
    )


def test_stopped_worker_finished_work_is_accepted_when_nobody_took_it(
    sqlite_farm: Farm, ledger: Ledger
) -> None:
    farm = sqlite_farm
    farm.controller(heartbeat=0.5, lease=LEASE_S)
    worker = farm.worker("sleeper", lanes=2)
    frames = range(1, 7)
    with farm.client() as client:
        job = client.submit("stop", ledger.command("sleep 0.5"), frames="1-6")
    wait_until(lambda: running_tasks(worker, 2), timeout=30, what="both lanes busy")
    worker.popen.send_signal(signal.SIGSTOP)  # its tasks run on and complete meanwhile
    try:
        wait_until(lambda: ledger.tally(frames).runs == 2, timeout=10, what="both tasks completed")
        wait_until(
            lambda: worker_status(farm, "sleeper") == "offline",
            timeout=LEASE_S + 20,
            what="the stopped worker offline",
        )
    finally:
        worker.popen.send_signal(signal.SIGCONT)
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
    assert_exactly_once(farm, job.id, ledger, frames)
