"""Who may see and act on which job (docs/security.md, "Roles").

A job is visible to its owner, to the members of any group its owner belongs to, and to
wranglers and admins; its env, tasks, attempts and logs follow it. Viewers see by the same
rule as artists (what their groups share), never more: a farm-wide viewer would read every
job's env. Only the owner, wranglers and admins act on a job. A job invisible to the caller
answers 404, as if it did not exist; a visible job the caller may not change answers 403.
Submitting with `preempt` or into a dedicated pool (`pool:@...`) needs a wrangler."""

from __future__ import annotations

from thresher.controller.auth import ANY_JOB, PEOPLE, Caller
from thresher.core.errors import Forbidden, InvalidInput, NotFound
from thresher.core.filters import parse_filters
from thresher.core.model import JobSpec
from thresher.store.store import Store


def may_see(store: Store, caller: Caller, owner: str) -> bool:
    if caller.role in ANY_JOB or owner == caller.name:
        return True
    if caller.role not in PEOPLE or not caller.groups:
        return False
    return bool(caller.groups.intersection(store.users.groups_of(owner)))


def check_visible(store: Store, caller: Caller, job_id: int, owner: str) -> None:
    if not may_see(store, caller, owner):
        raise NotFound(f"no job {job_id}", field="job_id")


def check_may_change(store: Store, caller: Caller, job_id: int, owner: str) -> None:
    """The caller may act on the job: its owner, a wrangler or an admin (404 when the job is
    not even visible to the caller)."""
    check_visible(store, caller, job_id, owner)
    if caller.role not in ANY_JOB and owner != caller.name:
        raise Forbidden(f"job {job_id} belongs to {owner}", field="job_id")


def visible_owners(store: Store, caller: Caller) -> set[str] | None:
    """The owners whose jobs the caller sees; None: everyone's."""
    if caller.role in ANY_JOB:
        return None
    return {caller.name} | store.users.sharing_groups(caller.groups)


def check_submission(caller: Caller, spec: JobSpec) -> None:
    """Preemption and dedicated pools take other people's machines: wranglers only."""
    if caller.role in ANY_JOB:
        return
    if spec.preempt:
        raise Forbidden("preempting other jobs needs a wrangler", field="preempt")
    texts = [spec.filters, *(b.host_filters for b in spec.blocks)]
    for text in texts:
        try:
            dedicated = parse_filters(text).dedicated_pools
        except InvalidInput:
            continue  # compiling reported it already
        if dedicated:
            raise Forbidden(
                f"a dedicated pool ({', '.join(sorted(dedicated))}) needs a wrangler",
                field="filters",
            )
