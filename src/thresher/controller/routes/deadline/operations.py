"""Every operation of Deadline Cloud's API (2023-10-12), as its service model names it, so a
request Thresher does not answer is refused naming the operation it asked for."""

from __future__ import annotations

import re

#: (operation, HTTP method, path template below /deadline)
OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("BatchGetJob", "POST", "/2023-10-12/batch-get-job"),
    ("BatchGetSession", "POST", "/2023-10-12/batch-get-session"),
    ("BatchGetSessionAction", "POST", "/2023-10-12/batch-get-session-action"),
    ("BatchGetStep", "POST", "/2023-10-12/batch-get-step"),
    ("BatchGetTask", "POST", "/2023-10-12/batch-get-task"),
    ("BatchGetWorker", "POST", "/2023-10-12/batch-get-worker"),
    ("BatchUpdateJob", "PATCH", "/2023-10-12/batch-update-job"),
    ("BatchUpdateTask", "PATCH", "/2023-10-12/batch-update-task"),
    ("ListFarms", "GET", "/2023-10-12/farms"),
    ("CreateFarm", "POST", "/2023-10-12/farms"),
    ("DeleteFarm", "DELETE", "/2023-10-12/farms/{farmId}"),
    ("GetFarm", "GET", "/2023-10-12/farms/{farmId}"),
    ("UpdateFarm", "PATCH", "/2023-10-12/farms/{farmId}"),
    ("ListBudgets", "GET", "/2023-10-12/farms/{farmId}/budgets"),
    ("CreateBudget", "POST", "/2023-10-12/farms/{farmId}/budgets"),
    ("DeleteBudget", "DELETE", "/2023-10-12/farms/{farmId}/budgets/{budgetId}"),
    ("GetBudget", "GET", "/2023-10-12/farms/{farmId}/budgets/{budgetId}"),
    ("UpdateBudget", "PATCH", "/2023-10-12/farms/{farmId}/budgets/{budgetId}"),
    ("ListFleets", "GET", "/2023-10-12/farms/{farmId}/fleets"),
    ("CreateFleet", "POST", "/2023-10-12/farms/{farmId}/fleets"),
    ("DeleteFleet", "DELETE", "/2023-10-12/farms/{farmId}/fleets/{fleetId}"),
    ("GetFleet", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}"),
    ("UpdateFleet", "PATCH", "/2023-10-12/farms/{farmId}/fleets/{fleetId}"),
    ("ListFleetMembers", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/members"),
    (
        "DisassociateMemberFromFleet",
        "DELETE",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/members/{principalId}",
    ),
    (
        "AssociateMemberToFleet",
        "PUT",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/members/{principalId}",
    ),
    ("AssumeFleetRoleForRead", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/read-roles"),
    ("ListVolumes", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/volumes"),
    ("DeleteVolume", "DELETE", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/volumes/{volumeId}"),
    ("GetVolume", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/volumes/{volumeId}"),
    ("ListWorkers", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers"),
    ("CreateWorker", "POST", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers"),
    ("DeleteWorker", "DELETE", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}"),
    ("GetWorker", "GET", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}"),
    ("UpdateWorker", "PATCH", "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}"),
    (
        "BatchGetJobEntity",
        "POST",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}/batchGetJobEntity",
    ),
    (
        "AssumeFleetRoleForWorker",
        "GET",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}/fleet-roles",
    ),
    (
        "AssumeQueueRoleForWorker",
        "GET",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}/queue-roles",
    ),
    (
        "UpdateWorkerSchedule",
        "PATCH",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}/schedule",
    ),
    (
        "ListSessionsForWorker",
        "GET",
        "/2023-10-12/farms/{farmId}/fleets/{fleetId}/workers/{workerId}/sessions",
    ),
    ("ListLimits", "GET", "/2023-10-12/farms/{farmId}/limits"),
    ("CreateLimit", "POST", "/2023-10-12/farms/{farmId}/limits"),
    ("DeleteLimit", "DELETE", "/2023-10-12/farms/{farmId}/limits/{limitId}"),
    ("GetLimit", "GET", "/2023-10-12/farms/{farmId}/limits/{limitId}"),
    ("UpdateLimit", "PATCH", "/2023-10-12/farms/{farmId}/limits/{limitId}"),
    ("ListFarmMembers", "GET", "/2023-10-12/farms/{farmId}/members"),
    ("DisassociateMemberFromFarm", "DELETE", "/2023-10-12/farms/{farmId}/members/{principalId}"),
    ("AssociateMemberToFarm", "PUT", "/2023-10-12/farms/{farmId}/members/{principalId}"),
    ("ListQueueFleetAssociations", "GET", "/2023-10-12/farms/{farmId}/queue-fleet-associations"),
    ("CreateQueueFleetAssociation", "PUT", "/2023-10-12/farms/{farmId}/queue-fleet-associations"),
    (
        "DeleteQueueFleetAssociation",
        "DELETE",
        "/2023-10-12/farms/{farmId}/queue-fleet-associations/{queueId}/{fleetId}",
    ),
    (
        "GetQueueFleetAssociation",
        "GET",
        "/2023-10-12/farms/{farmId}/queue-fleet-associations/{queueId}/{fleetId}",
    ),
    (
        "UpdateQueueFleetAssociation",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queue-fleet-associations/{queueId}/{fleetId}",
    ),
    ("ListQueueLimitAssociations", "GET", "/2023-10-12/farms/{farmId}/queue-limit-associations"),
    ("CreateQueueLimitAssociation", "PUT", "/2023-10-12/farms/{farmId}/queue-limit-associations"),
    (
        "DeleteQueueLimitAssociation",
        "DELETE",
        "/2023-10-12/farms/{farmId}/queue-limit-associations/{queueId}/{limitId}",
    ),
    (
        "GetQueueLimitAssociation",
        "GET",
        "/2023-10-12/farms/{farmId}/queue-limit-associations/{queueId}/{limitId}",
    ),
    (
        "UpdateQueueLimitAssociation",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queue-limit-associations/{queueId}/{limitId}",
    ),
    ("ListQueues", "GET", "/2023-10-12/farms/{farmId}/queues"),
    ("CreateQueue", "POST", "/2023-10-12/farms/{farmId}/queues"),
    ("DeleteQueue", "DELETE", "/2023-10-12/farms/{farmId}/queues/{queueId}"),
    ("GetQueue", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}"),
    ("UpdateQueue", "PATCH", "/2023-10-12/farms/{farmId}/queues/{queueId}"),
    ("ListQueueEnvironments", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/environments"),
    ("CreateQueueEnvironment", "POST", "/2023-10-12/farms/{farmId}/queues/{queueId}/environments"),
    (
        "DeleteQueueEnvironment",
        "DELETE",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/environments/{queueEnvironmentId}",
    ),
    (
        "GetQueueEnvironment",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/environments/{queueEnvironmentId}",
    ),
    (
        "UpdateQueueEnvironment",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/environments/{queueEnvironmentId}",
    ),
    ("ListJobs", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs"),
    ("CreateJob", "POST", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs"),
    ("GetJob", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}"),
    ("UpdateJob", "PATCH", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}"),
    ("ListJobMembers", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/members"),
    (
        "DisassociateMemberFromJob",
        "DELETE",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/members/{principalId}",
    ),
    (
        "AssociateMemberToJob",
        "PUT",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/members/{principalId}",
    ),
    (
        "ListJobParameterDefinitions",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/parameter-definitions",
    ),
    (
        "ListSessionActions",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/session-actions",
    ),
    (
        "GetSessionAction",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/session-actions/{sessionActionId}",
    ),
    ("ListSessions", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/sessions"),
    (
        "GetSession",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/sessions/{sessionId}",
    ),
    (
        "UpdateSession",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/sessions/{sessionId}",
    ),
    ("ListSteps", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps"),
    ("GetStep", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}"),
    (
        "UpdateStep",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}",
    ),
    (
        "ListStepConsumers",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}/consumers",
    ),
    (
        "ListStepDependencies",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}/dependencies",
    ),
    (
        "ListTasks",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}/tasks",
    ),
    (
        "GetTask",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}/tasks/{taskId}",
    ),
    (
        "UpdateTask",
        "PATCH",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/steps/{stepId}/tasks/{taskId}",
    ),
    (
        "CopyJobTemplate",
        "POST",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/jobs/{jobId}/template",
    ),
    ("ListQueueMembers", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/members"),
    (
        "DisassociateMemberFromQueue",
        "DELETE",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/members/{principalId}",
    ),
    (
        "AssociateMemberToQueue",
        "PUT",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/members/{principalId}",
    ),
    ("AssumeQueueRoleForRead", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/read-roles"),
    (
        "ListStorageProfilesForQueue",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/storage-profiles",
    ),
    (
        "GetStorageProfileForQueue",
        "GET",
        "/2023-10-12/farms/{farmId}/queues/{queueId}/storage-profiles/{storageProfileId}",
    ),
    ("AssumeQueueRoleForUser", "GET", "/2023-10-12/farms/{farmId}/queues/{queueId}/user-roles"),
    ("SearchJobs", "POST", "/2023-10-12/farms/{farmId}/search/jobs"),
    ("SearchSteps", "POST", "/2023-10-12/farms/{farmId}/search/steps"),
    ("SearchTasks", "POST", "/2023-10-12/farms/{farmId}/search/tasks"),
    ("SearchWorkers", "POST", "/2023-10-12/farms/{farmId}/search/workers"),
    (
        "GetSessionsStatisticsAggregation",
        "GET",
        "/2023-10-12/farms/{farmId}/sessions-statistics-aggregation",
    ),
    (
        "StartSessionsStatisticsAggregation",
        "POST",
        "/2023-10-12/farms/{farmId}/sessions-statistics-aggregation",
    ),
    ("ListStorageProfiles", "GET", "/2023-10-12/farms/{farmId}/storage-profiles"),
    ("CreateStorageProfile", "POST", "/2023-10-12/farms/{farmId}/storage-profiles"),
    (
        "DeleteStorageProfile",
        "DELETE",
        "/2023-10-12/farms/{farmId}/storage-profiles/{storageProfileId}",
    ),
    ("GetStorageProfile", "GET", "/2023-10-12/farms/{farmId}/storage-profiles/{storageProfileId}"),
    (
        "UpdateStorageProfile",
        "PATCH",
        "/2023-10-12/farms/{farmId}/storage-profiles/{storageProfileId}",
    ),
    ("ListLicenseEndpoints", "GET", "/2023-10-12/license-endpoints"),
    ("CreateLicenseEndpoint", "POST", "/2023-10-12/license-endpoints"),
    ("DeleteLicenseEndpoint", "DELETE", "/2023-10-12/license-endpoints/{licenseEndpointId}"),
    ("GetLicenseEndpoint", "GET", "/2023-10-12/license-endpoints/{licenseEndpointId}"),
    (
        "ListMeteredProducts",
        "GET",
        "/2023-10-12/license-endpoints/{licenseEndpointId}/metered-products",
    ),
    (
        "DeleteMeteredProduct",
        "DELETE",
        "/2023-10-12/license-endpoints/{licenseEndpointId}/metered-products/{productId}",
    ),
    (
        "PutMeteredProduct",
        "PUT",
        "/2023-10-12/license-endpoints/{licenseEndpointId}/metered-products/{productId}",
    ),
    ("ListMemberships", "GET", "/2023-10-12/memberships"),
    ("ListAvailableMeteredProducts", "GET", "/2023-10-12/metered-products"),
    ("ListMonitors", "GET", "/2023-10-12/monitors"),
    ("CreateMonitor", "POST", "/2023-10-12/monitors"),
    ("DeleteMonitor", "DELETE", "/2023-10-12/monitors/{monitorId}"),
    ("GetMonitor", "GET", "/2023-10-12/monitors/{monitorId}"),
    ("UpdateMonitor", "PATCH", "/2023-10-12/monitors/{monitorId}"),
    ("GetMonitorSettings", "GET", "/2023-10-12/monitors/{monitorId}/settings"),
    ("UpdateMonitorSettings", "PATCH", "/2023-10-12/monitors/{monitorId}/settings"),
    ("UntagResource", "DELETE", "/2023-10-12/tags/{resourceArn}"),
    ("ListTagsForResource", "GET", "/2023-10-12/tags/{resourceArn}"),
    ("TagResource", "POST", "/2023-10-12/tags/{resourceArn}"),
)


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(template)))


_PATTERNS = [(name, method, _pattern(template)) for name, method, template in OPERATIONS]


def operation_of(method: str, path: str) -> str | None:
    """The operation a request asks for (`path` below /deadline), None if none matches."""
    for name, wanted, pattern in _PATTERNS:
        if wanted == method and pattern.fullmatch(path):
            return name
    return None
