"""The HTTP contract of `/api/v1`, in one namespace: `api.JobIn`, `api.PollOut`, ...

Pydantic lives only in `schemas`. The models are defined by audience (`jobs`: people's jobs and
tasks; `agent`: workers; `farm`: workers, tokens, limits, users, pools as people set them) and
gathered here; `tests/schemas` keeps `__all__` complete. A name's module is imported when the
name is first used, so a program that needs the jobs' models (`thresher jobs`) does not build
the workers' and the farm's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thresher.schemas.agent import (
        AssignmentOut as AssignmentOut,
    )
    from thresher.schemas.agent import (
        FinishIn as FinishIn,
    )
    from thresher.schemas.agent import (
        OutputBatch as OutputBatch,
    )
    from thresher.schemas.agent import (
        PollIn as PollIn,
    )
    from thresher.schemas.agent import (
        PollOut as PollOut,
    )
    from thresher.schemas.agent import (
        RegisterIn as RegisterIn,
    )
    from thresher.schemas.agent import (
        RegisterOut as RegisterOut,
    )
    from thresher.schemas.agent import (
        ReportIn as ReportIn,
    )
    from thresher.schemas.agent import (
        RunningIn as RunningIn,
    )
    from thresher.schemas.base import (
        Strict as Strict,
    )
    from thresher.schemas.farm import (
        ErrorHostList as ErrorHostList,
    )
    from thresher.schemas.farm import (
        ErrorHostOut as ErrorHostOut,
    )
    from thresher.schemas.farm import (
        LaneIn as LaneIn,
    )
    from thresher.schemas.farm import (
        LaneOut as LaneOut,
    )
    from thresher.schemas.farm import (
        LimitIn as LimitIn,
    )
    from thresher.schemas.farm import (
        LimitList as LimitList,
    )
    from thresher.schemas.farm import (
        LimitOut as LimitOut,
    )
    from thresher.schemas.farm import (
        PoolList as PoolList,
    )
    from thresher.schemas.farm import (
        PoolOut as PoolOut,
    )
    from thresher.schemas.farm import (
        PoolsIn as PoolsIn,
    )
    from thresher.schemas.farm import (
        ResetOut as ResetOut,
    )
    from thresher.schemas.farm import (
        TokenIn as TokenIn,
    )
    from thresher.schemas.farm import (
        TokenOut as TokenOut,
    )
    from thresher.schemas.farm import (
        UserIn as UserIn,
    )
    from thresher.schemas.farm import (
        UserList as UserList,
    )
    from thresher.schemas.farm import (
        UserOut as UserOut,
    )
    from thresher.schemas.farm import (
        WorkerList as WorkerList,
    )
    from thresher.schemas.farm import (
        WorkerOut as WorkerOut,
    )
    from thresher.schemas.jobs import (
        ActionOut as ActionOut,
    )
    from thresher.schemas.jobs import (
        AttemptList as AttemptList,
    )
    from thresher.schemas.jobs import (
        AttemptOut as AttemptOut,
    )
    from thresher.schemas.jobs import (
        BlockIn as BlockIn,
    )
    from thresher.schemas.jobs import (
        BlockOut as BlockOut,
    )
    from thresher.schemas.jobs import (
        BlockWaitOut as BlockWaitOut,
    )
    from thresher.schemas.jobs import (
        ContainerIn as ContainerIn,
    )
    from thresher.schemas.jobs import (
        Counts as Counts,
    )
    from thresher.schemas.jobs import (
        EngineJobSettings as EngineJobSettings,
    )
    from thresher.schemas.jobs import (
        JobIn as JobIn,
    )
    from thresher.schemas.jobs import (
        JobList as JobList,
    )
    from thresher.schemas.jobs import (
        JobOut as JobOut,
    )
    from thresher.schemas.jobs import (
        LogLine as LogLine,
    )
    from thresher.schemas.jobs import (
        LogOut as LogOut,
    )
    from thresher.schemas.jobs import (
        PriorityIn as PriorityIn,
    )
    from thresher.schemas.jobs import (
        ReasonOut as ReasonOut,
    )
    from thresher.schemas.jobs import (
        TaskDetail as TaskDetail,
    )
    from thresher.schemas.jobs import (
        TaskOut as TaskOut,
    )
    from thresher.schemas.jobs import (
        TaskPage as TaskPage,
    )
    from thresher.schemas.jobs import (
        TaskWhyOut as TaskWhyOut,
    )
    from thresher.schemas.jobs import (
        WhyOut as WhyOut,
    )
    from thresher.schemas.sites import (
        AgentSiteList as AgentSiteList,
    )
    from thresher.schemas.sites import (
        AgentSiteOut as AgentSiteOut,
    )
    from thresher.schemas.sites import (
        FileAccessOut as FileAccessOut,
    )
    from thresher.schemas.sites import (
        JobSiteIn as JobSiteIn,
    )
    from thresher.schemas.sites import (
        JobSiteList as JobSiteList,
    )
    from thresher.schemas.sites import (
        JobSiteOut as JobSiteOut,
    )
    from thresher.schemas.sites import (
        SiteIn as SiteIn,
    )
    from thresher.schemas.sites import (
        SiteList as SiteList,
    )
    from thresher.schemas.sites import (
        SiteOut as SiteOut,
    )
    from thresher.schemas.sites import (
        SyncClaimOut as SyncClaimOut,
    )
    from thresher.schemas.sites import (
        SyncReportIn as SyncReportIn,
    )
    from thresher.schemas.sites import (
        VolumeIn as VolumeIn,
    )
    from thresher.schemas.sites import (
        VolumeList as VolumeList,
    )
    from thresher.schemas.sites import (
        VolumeOut as VolumeOut,
    )

#: Where each name is defined.
_MODULES = {
    "ActionOut": "jobs",
    "AssignmentOut": "agent",
    "AttemptList": "jobs",
    "AttemptOut": "jobs",
    "BlockIn": "jobs",
    "BlockOut": "jobs",
    "BlockWaitOut": "jobs",
    "ContainerIn": "jobs",
    "Counts": "jobs",
    "TaskWhyOut": "jobs",
    "EngineJobSettings": "jobs",
    "ErrorHostList": "farm",
    "ErrorHostOut": "farm",
    "FinishIn": "agent",
    "JobIn": "jobs",
    "JobList": "jobs",
    "JobOut": "jobs",
    "LaneIn": "farm",
    "LaneOut": "farm",
    "LimitIn": "farm",
    "LimitList": "farm",
    "LimitOut": "farm",
    "LogLine": "jobs",
    "LogOut": "jobs",
    "OutputBatch": "agent",
    "PollIn": "agent",
    "PollOut": "agent",
    "PoolList": "farm",
    "PoolOut": "farm",
    "PoolsIn": "farm",
    "PriorityIn": "jobs",
    "ReasonOut": "jobs",
    "RegisterIn": "agent",
    "RegisterOut": "agent",
    "ReportIn": "agent",
    "ResetOut": "farm",
    "RunningIn": "agent",
    "Strict": "base",
    "TaskDetail": "jobs",
    "TaskOut": "jobs",
    "TaskPage": "jobs",
    "TokenIn": "farm",
    "TokenOut": "farm",
    "UserIn": "farm",
    "UserList": "farm",
    "UserOut": "farm",
    "WhyOut": "jobs",
    "WorkerList": "farm",
    "WorkerOut": "farm",
    "FileAccessOut": "sites",
    "AgentSiteList": "sites",
    "AgentSiteOut": "sites",
    "SyncClaimOut": "sites",
    "SyncReportIn": "sites",
    "JobSiteIn": "sites",
    "JobSiteList": "sites",
    "JobSiteOut": "sites",
    "SiteIn": "sites",
    "SiteList": "sites",
    "SiteOut": "sites",
    "VolumeIn": "sites",
    "VolumeList": "sites",
    "VolumeOut": "sites",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"thresher.schemas.{module}"), name)
    globals()[name] = value  # found once
    return value
